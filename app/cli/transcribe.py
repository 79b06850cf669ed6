"""``python main.py transcribe FILE ...``: a file in, a speaker-labelled session out."""

from __future__ import annotations

import json
import sys
import threading
import time

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    add_model_args,
    engine_config,
    load_settings,
    open_library,
    remote_engine,
)


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe an audio or video file into a new session "
                                          "(or a recorded session: --session ID)")
    p.add_argument("file", nargs="?", help="the file (not with --session)")
    p.add_argument("--session", type=int, metavar="ID",
                   help="transcribe the audio of this session (a recording made without --live)")
    p.add_argument("--speakers", type=int, help="number of speakers, if known (else automatic)")
    p.add_argument("--language", help="language of the speech, if known")
    p.add_argument("--translate-to", metavar="LANG", help="write the transcript in this language")
    p.add_argument("--title", help="session title (default: the file name)")
    p.add_argument("--parallel", type=int, default=8, help="utterances decoded together (default 8)")
    p.add_argument("--json", action="store_true", help="print the session's segments as JSON")
    add_model_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..engine.engine import Engine
    from ..engine.errors import ModelError
    from ..engine.resolve import resolve_model
    from ..pipeline.transcribe import Progress, TranscribeCancelled, TranscribeOptions, transcribe_file

    if args.speakers is not None and args.speakers < 1:
        raise UsageError("--speakers must be at least 1")
    if (args.file is None) == (args.session is None):
        raise UsageError("give a FILE to transcribe, or --session ID of a recording (one of them)")
    if args.file is not None:
        from ..media.audio import check_file

        check_file(args.file)  # a missing file or a directory says so before any model is looked for
    settings = load_settings()
    remote = remote_engine(args, settings)
    if remote is None:
        choice = resolve_model(args.model, args.mmproj, settings)
        if choice.mmproj is None:
            raise ModelError("transcription needs the model's mmproj (audio): give --mmproj")
    cfg = engine_config(args, settings)
    cfg.n_parallel = max(1, args.parallel)
    opts = TranscribeOptions.from_settings(settings, title=args.title, speakers=args.speakers,
                                           language=args.language or None,
                                           translate_to=args.translate_to or None, parallel=cfg.n_parallel)
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < (0.2 if tty else 10.0) and p.done < p.total:
            return
        last[0] = now
        line = f"{100 * p.fraction:5.1f}%  {p.done}/{p.total} utterances  (session {p.session_id})"
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    cancel = threading.Event()
    loaded: list = []

    def engine():  # loaded only once the file has been read and has speech
        if not loaded:
            loaded.append(remote or Engine(choice.model, choice.mmproj, cfg, drafter=choice.drafter))
        return loaded[0]

    with open_library() as lib:
        try:
            path = args.file
            if args.session is not None:
                path = _session_audio(lib, args.session, opts)
            sid = transcribe_file(lib, engine, path, opts, progress=show, cancel=cancel)
        except (KeyboardInterrupt, TranscribeCancelled):
            if tty:
                print(file=sys.stderr)
            print("minutely: stopped; run the same command again to continue", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            for e in loaded:
                e.close()
        if tty:
            print(file=sys.stderr)
        if args.json:
            d = lib.session_detail(sid)
            print(json.dumps({"session_id": sid, "segments": [
                {"start": g.start, "end": g.end, "speaker": g.speaker, "text": g.text} for g in d.segments],
                "overlaps": [{"start": o.start, "end": o.end, "speaker": o.speaker} for o in d.overlaps]},
                ensure_ascii=False, indent=2))
        else:
            print(sid)
    return EXIT_OK


def _session_audio(lib, session_id: int, opts):
    """The audio of a recorded session, with its transcription job prepared in that session."""
    from ..library.db import NotFound
    from ..pipeline.transcribe import prepare_file

    try:
        lib.get_session(session_id)
    except NotFound:
        raise UsageError(f"no session {session_id}") from None
    audio = lib.session_audio(session_id)
    if audio is None:
        raise UsageError(f"session {session_id} has no audio to transcribe")
    if lib.segments(session_id):
        raise UsageError(f"session {session_id} is already transcribed")
    prepare_file(lib, audio, opts, session_id=session_id)  # the job then resumes into this session
    return audio
