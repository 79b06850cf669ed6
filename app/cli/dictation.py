"""``python main.py dictate FILE`` and ``python main.py edit``: dictation and voice editing without a window."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_model_args,
    engine_config,
    load_settings,
    need_file,
    remote_engine,
    say,
)


def register(sub) -> None:
    d = sub.add_parser("dictate", help="turn a recording of dictated speech into text")
    d.add_argument("audio", help="any audio or video file")
    d.add_argument("--language", help="language of the speech, if known")
    d.add_argument("--translate-to", metavar="LANG", help="write the text in this language")
    d.add_argument("--keep-fillers", action="store_true", help="keep um, uh and false starts")
    d.add_argument("--literal", action="store_true",
                   help="write spoken punctuation words as words ('comma' stays 'comma')")
    d.add_argument("--save", action="store_true", help="also keep it in the library as a dictation session")
    add_model_args(d)
    d.set_defaults(run=run_dictate)
    e = sub.add_parser("edit", help="edit text by a spoken or typed instruction; prints the new text")
    e.add_argument("--text-file", required=True, metavar="FILE", help="the text to edit (UTF-8)")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--instruction-audio", metavar="FILE", help="the spoken instruction (any audio file)")
    g.add_argument("--instruction", metavar="TEXT", help="a typed instruction")
    add_model_args(e)
    e.set_defaults(run=run_edit)


def _engine(args, settings):
    from ..engine.engine import Engine
    from ..engine.errors import ModelError
    from ..engine.resolve import resolve_model

    remote = remote_engine(args, settings)
    if remote is not None:
        return remote
    choice = resolve_model(args.model, args.mmproj, settings)
    if choice.mmproj is None:
        raise ModelError("dictation needs the model's mmproj (audio): give --mmproj")
    return Engine(choice.model, choice.mmproj, engine_config(args, settings), drafter=choice.drafter)


def run_dictate(args) -> int:
    from ..media.audio import decode_audio
    from ..pipeline.dictate import DictationOptions, NothingHeard, dictate, save_dictation, speech_spans

    settings = load_settings()
    audio = decode_audio(need_file(args.audio, "audio file"))  # MediaError: exit 2, before a model load
    opts = DictationOptions(language=args.language or settings.language or None,
                            translate_to=args.translate_to or None,
                            remove_fillers=not args.keep_fillers, spoken_punctuation=not args.literal)
    if not speech_spans(audio):  # exit 1 (README): nothing heard; the same words as `transcribe` says
        from ..media.audio import SAMPLE_RATE, NoSpeech

        say(f"nothing was heard: {NoSpeech(Path(args.audio).name, len(audio) / SAMPLE_RATE)}")
        return EXIT_FAILED
    with _engine(args, settings) as engine:
        try:
            d = dictate(engine, audio, opts)
        except NothingHeard as e:
            say(str(e))
            return EXIT_FAILED
    print(d.text)
    if args.save:
        from ..library import Library

        with Library.open() as lib:
            print(f"saved as session {save_dictation(lib, audio, d.text, opts)}", file=sys.stderr)
    return EXIT_OK


def run_edit(args) -> int:
    from ..pipeline.dictate import NothingHeard, read_text_file, voice_edit

    settings = load_settings()
    try:
        text = read_text_file(args.text_file)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not text.strip():
        raise UsageError(f"{args.text_file} is empty: nothing to edit")
    audio = None
    if args.instruction_audio:
        from ..media.audio import decode_audio

        audio = decode_audio(need_file(args.instruction_audio, "instruction audio"))
    elif not args.instruction.strip():
        raise UsageError("the instruction is empty")
    with _engine(args, settings) as engine:
        try:
            out = voice_edit(engine, text, audio, None if audio is not None else args.instruction)
        except NothingHeard as e:
            say(str(e))
            return EXIT_FAILED
    sys.stdout.write(out.text)
    if not out.text.endswith("\n"):
        sys.stdout.write("\n")
    return EXIT_OK
