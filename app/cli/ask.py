"""``python main.py ask``: a question to the model, or about a session, a video or the whole library.

    ask "question" [--image F] [--audio F]  the model alone, with images and audio
    ask --session ID "question"            the session's chat (stored; --think where supported)
    ask --session ID --image F [--at T]    an image with the transcript around time T
    ask --video FILE "question"            the video becomes a session (reused next time)
    ask --all-sessions "question"          the model searches and reads the library (read-only)
"""

from __future__ import annotations

import json
import re
import sys
import threading
from typing import TYPE_CHECKING

from .common import (
    EXIT_OK,
    UsageError,
    add_model_args,
    engine_config,
    load_settings,
    need_file,
    open_library,
    remote_engine,
    say,
)

if TYPE_CHECKING:
    from ..pipeline.chat import ChatAnswer


def register(sub) -> None:
    ask = sub.add_parser("ask", help="ask the model a question, with images and audio")
    ask.add_argument("question")
    ask.add_argument("--image", action="append", default=[], metavar="FILE")
    ask.add_argument("--audio", action="append", default=[], metavar="FILE",
                     help="any audio or video file (decoded to 16 kHz mono)")
    ask.add_argument("--system", help="a system instruction")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--temperature", type=float, default=0.0)
    ask.add_argument("--seed", type=int, default=0)
    ask.add_argument("--stop", action="append", default=[])
    ask.add_argument("--json-schema", metavar="FILE", help="constrain the answer to this JSON schema")
    ask.add_argument("--image-tokens", type=int, help="token budget per image (70-1120)")
    ask.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")
    g = ask.add_argument_group("what the question is about (one of)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--session", type=int, metavar="ID", help="a session: its transcript and chat")
    x.add_argument("--video", metavar="FILE", help="a video: its frames and transcript")
    x.add_argument("--all-sessions", action="store_true", help="the whole library (search + read tools)")
    g.add_argument("--at", metavar="TIME", help="with --session --image: the image's time (mm:ss or seconds)")
    g.add_argument("--think", action="store_true", help="think harder (models whose template supports it)")
    g.add_argument("--no-save", action="store_true", help="do not store the question and answer")
    g.add_argument("--max-steps", type=int, default=4, help="--all-sessions: tool calls at most (default 4)")
    g.add_argument("--frame-tokens", type=int, default=70, help="--video: token budget per frame (70-1120)")
    g.add_argument("--json", action="store_true", help="print the answer, citations and tool calls as JSON")
    add_model_args(ask)
    ask.set_defaults(run=run)


def run(args) -> int:
    if wants_extended(args):
        return run_about(args)
    return run_plain(args)


def wants_extended(args) -> bool:
    return args.session is not None or bool(args.video) or bool(args.all_sessions)


def run_plain(args) -> int:
    """The question to the model alone, with its images and audio."""
    from ..engine.engine import Engine
    from ..engine.errors import ModelError
    from ..engine.messages import Audio, Image, Message
    from ..engine.resolve import resolve_model

    settings = load_settings()
    images = [Image(path=str(need_file(f, "image"))) for f in args.image]
    audios = []
    for f in args.audio:
        from ..media.audio import decode_audio

        audios.append(Audio(samples=decode_audio(need_file(f, "audio file"))))
    schema = None
    if args.json_schema:
        try:
            schema = json.loads(need_file(args.json_schema, "JSON schema").read_text())
        except ValueError as e:
            raise UsageError(f"the JSON schema is not valid JSON: {e}") from None
    remote = remote_engine(args, settings)
    if remote is None:
        choice = resolve_model(args.model, args.mmproj, settings)
        if (images or audios) and choice.mmproj is None:
            raise ModelError("images and audio need the model's mmproj: give --mmproj")
    msgs = []
    if args.system:
        msgs.append(Message.system(args.system))
    msgs.append(Message.user(*images, *audios, args.question))
    with remote or Engine(choice.model, choice.mmproj, engine_config(args, settings), drafter=choice.drafter) as engine:
        stream = engine.stream(msgs, max_tokens=args.max_tokens, temperature=args.temperature,
                               seed=args.seed, stop=tuple(args.stop), json_schema=schema,
                               image_tokens=args.image_tokens)
        for piece in stream:
            _print_piece(piece)
        sys.stdout.write("\n")
        r = stream.reply
        if args.stats and r is not None:
            print(f"prompt {r.prompt_tokens} tokens (media {r.media_tokens}), "
                  f"generated {r.generated_tokens} in {r.generate_seconds:.2f}s "
                  f"({r.tokens_per_second:.1f} tok/s), finish: {r.finish_reason}", file=sys.stderr)
            print(r.decoding_line(), file=sys.stderr)
    return EXIT_OK


def parse_at(text: str) -> float:
    t = text.strip().strip("[]")
    m = re.fullmatch(r"(?:(\d+):)?(\d{1,3}):(\d{2})", t)
    if m and int(m.group(3)) < 60:
        return float(int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + int(m.group(3)))
    try:
        v = float(t)
    except ValueError:
        v = -1.0
    if v < 0:
        raise UsageError(f"--at wants a time like 12:34 or a number of seconds, not {text!r}")
    return v


def _check(args) -> None:
    if not args.question.strip():
        raise UsageError("the question is empty")
    if args.audio:
        raise UsageError("--audio cannot be combined with --session, --video or --all-sessions")
    if args.json_schema:
        raise UsageError("--json-schema cannot be combined with --session, --video or --all-sessions")
    if args.image and args.session is None:
        raise UsageError("--image goes with --session (or without any of --video/--all-sessions)")
    if len(args.image) > 1:
        raise UsageError("--session takes one --image")
    if args.at is not None and not args.image:
        raise UsageError("--at goes with --image")
    if args.think and (args.image or args.video or args.all_sessions):
        raise UsageError("--think works with --session questions only")
    if args.max_steps < 0 or args.max_steps > 20:
        raise UsageError("--max-steps must be between 0 and 20")


def run_about(args) -> int:
    """A question about a session (its chat, or an image at a time), a video or the whole library."""
    from ..engine.engine import Engine
    from ..engine.errors import ModelError
    from ..engine.resolve import resolve_model
    from ..library.db import NotFound

    _check(args)
    at = parse_at(args.at) if args.at is not None else None
    image = str(need_file(args.image[0], "image")) if args.image else None
    video = None
    if args.video:
        from ..media.video import probe

        video = need_file(args.video, "video")
        probe(video)  # not a video: one line, before a model is loaded
    settings = load_settings()
    remote = remote_engine(args, settings)
    if remote is None:
        choice = resolve_model(args.model, args.mmproj, settings)
        if (image or video) and choice.mmproj is None:
            raise ModelError("images and videos need the model's mmproj: give --mmproj")
    stream = None if args.json else _print_piece
    with open_library() as lib:
        if args.session is not None:
            try:
                lib.get_session(args.session)
            except NotFound as e:
                raise UsageError(str(e)) from None
        loaded: list = []

        def engine():
            if not loaded:
                loaded.append(remote or Engine(choice.model, choice.mmproj, engine_config(args, settings),
                                     drafter=choice.drafter))
            return loaded[0]

        try:
            out: dict = {}
            ans: ChatAnswer
            if args.all_sessions:
                from ..pipeline.tools import ask_library

                def told(call) -> None:
                    if args.stats or args.verbose:
                        what = call.error or f"{len(call.result.splitlines())} lines"
                        print(f"tool {call.name} {json.dumps(call.arguments, ensure_ascii=False)}: {what}",
                              file=sys.stderr)

                ans = ask_library(lib, engine(), args.question, max_steps=args.max_steps, on_piece=stream,
                                  on_tool=told, max_tokens=args.max_tokens)
                out["tool_calls"] = [{"tool": c.name, "arguments": c.arguments, "error": c.error}
                                     for c in ans.calls]
            elif video is not None:
                from ..pipeline.video import ask_video, import_video

                sid = import_video(lib, engine, video, progress=_progress() if sys.stderr.isatty() else None)
                say(f"video session {sid}")
                ans = ask_video(lib, engine(), sid, args.question, frame_tokens=args.frame_tokens,
                                on_piece=stream, max_tokens=args.max_tokens, temperature=args.temperature,
                                save=not args.no_save)
                out["session_id"] = sid
                out["span"] = list(ans.excerpt) if ans.excerpt else None
            elif image is not None:
                from ..pipeline.chat import ask_image

                ans = ask_image(engine(), args.question, image, lib=lib, session_id=args.session, offset=at,
                                on_piece=stream, max_tokens=args.max_tokens, image_tokens=args.image_tokens)
                out["session_id"] = args.session
            else:
                from ..pipeline.chat import SessionChat

                chat = SessionChat(lib, engine(), args.session)
                ans = chat.ask(args.question, think=args.think, on_piece=stream, max_tokens=args.max_tokens,
                               temperature=args.temperature, save=not args.no_save)
                out["session_id"] = args.session
        finally:
            for eng in loaded:
                eng.close()
    if args.json:
        out = {"answer": ans.text, "citations": [
            {"label": c.label, "seconds": c.seconds, "end": c.end} for c in ans.citations], **out}
        if ans.thought:
            out["thought"] = ans.thought
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write("\n")
    r = ans.reply
    if args.stats and r is not None:
        print(f"prompt {r.prompt_tokens} tokens ({r.evaluated_tokens} evaluated, media {len(r.media_tokens)} "
              f"parts), generated {r.generated_tokens} in {r.generate_seconds:.2f}s, "
              f"finish: {r.finish_reason}; cited: {', '.join(c.label for c in ans.citations) or 'nothing'}",
              file=sys.stderr)
    return EXIT_OK


def _print_piece(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _progress():
    lock = threading.Lock()

    def show(stage: str, fraction: float) -> None:
        with lock:
            print(f"\r{stage} {100 * fraction:5.1f}%", end="", file=sys.stderr, flush=True)
            if stage == "frames" and fraction >= 1.0:
                print(file=sys.stderr)

    return show
