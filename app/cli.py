"""``python main.py <command>``: Minutely without a window.

Exit codes: 0 ok; 2 bad usage or input (a missing or unreadable file); 3 a
model problem (missing, wrong or damaged model files, the model process
crashed); 130 interrupted. Errors are one line on stderr, never a traceback
(``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 2, 3, 130


class UsageError(Exception):
    """Bad arguments or input files (exit 2)."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="language model GGUF (else $MINUTELY_MODEL, else settings)")
    g.add_argument("--mmproj", help="its projector GGUF (else $MINUTELY_MMPROJ, else settings)")
    g.add_argument("--threads", type=int, help="CPU threads (default: from settings, 0 = auto)")
    g.add_argument("--ctx", type=int, help="context size in tokens")
    g.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (-1 = all)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="minutely", description="Minutely, the offline meeting assistant.")
    ap.add_argument("--version", action="version", version=f"Minutely {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="list, check, download or import models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="the catalogue and what is installed")
    ml.add_argument("--json", action="store_true")
    mc = msub.add_parser("check", help="validate a model + mmproj pair without loading it")
    mc.add_argument("--model", required=False)
    mc.add_argument("--mmproj", required=False)
    mc.add_argument("--load", action="store_true", help="also load it and answer a test prompt")
    md = msub.add_parser("download", help="download a catalogue model (the default if no NAME)")
    md.add_argument("name", nargs="?")
    mi = msub.add_parser("import", help="use local GGUF files (validated)")
    mi.add_argument("model")
    mi.add_argument("mmproj")
    mi.add_argument("--copy", action="store_true", help="copy into the data folder instead of referencing")

    from .cli_sessions import add_parser as add_sessions_parser

    add_sessions_parser(sub)
    from .cli_transcribe import add_parser as add_transcribe_parser

    add_transcribe_parser(sub)
    from .cli_summarize import add_parser as add_summarize_parser

    add_summarize_parser(sub)
    from .cli_record import add_parser as add_record_parser

    add_record_parser(sub)
    from .cli_dictation import add_parser as add_dictation_parser  # `dictate`, `edit`

    add_dictation_parser(sub)
    from .selftest import add_parser as add_selftest_parser  # `self-test` / `--self-test`

    add_selftest_parser(sub)

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
    from .cli_ask import add_ask_args  # --session / --video / --all-sessions

    add_ask_args(ask)
    _add_model_args(ask)
    return ap


def _settings():
    from .settings import Settings

    return Settings.load()


def _engine_config(args, settings):
    from .engine.config import EngineConfig

    cfg = EngineConfig.from_settings(settings)
    if getattr(args, "threads", None) is not None:
        cfg.n_threads = args.threads
    if getattr(args, "ctx", None) is not None:
        cfg.n_ctx = args.ctx
    if getattr(args, "gpu_layers", None) is not None:
        cfg.n_gpu_layers = args.gpu_layers
    return cfg


def _need_file(path: str, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path} is a directory")
    if not p.is_file():
        raise UsageError(f"{what} not found: {path}")
    return p


def cmd_ask(args) -> int:
    from .engine.engine import Engine
    from .engine.errors import ModelError
    from .engine.messages import Audio, Image, Message
    from .engine.resolve import resolve_model

    from .cli_ask import run_ask, wants_extended

    if wants_extended(args):
        return run_ask(args)
    settings = _settings()
    images = [Image(path=str(_need_file(f, "image"))) for f in args.image]
    audios = []
    for f in args.audio:
        from .media.audio import decode_audio

        audios.append(Audio(samples=decode_audio(_need_file(f, "audio file"))))
    schema = None
    if args.json_schema:
        try:
            schema = json.loads(_need_file(args.json_schema, "JSON schema").read_text())
        except ValueError as e:
            raise UsageError(f"the JSON schema is not valid JSON: {e}") from None
    choice = resolve_model(args.model, args.mmproj, settings)
    if (images or audios) and choice.mmproj is None:
        raise ModelError("images and audio need the model's mmproj: give --mmproj")
    msgs = []
    if args.system:
        msgs.append(Message.system(args.system))
    msgs.append(Message.user(*images, *audios, args.question))
    with Engine(choice.model, choice.mmproj, _engine_config(args, settings)) as engine:
        stream = engine.stream(msgs, max_tokens=args.max_tokens, temperature=args.temperature,
                               seed=args.seed, stop=tuple(args.stop), json_schema=schema,
                               image_tokens=args.image_tokens)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        r = stream.reply
        if args.stats and r is not None:
            print(f"prompt {r.prompt_tokens} tokens (media {r.media_tokens}), "
                  f"generated {r.generated_tokens} in {r.generate_seconds:.2f}s "
                  f"({r.tokens_per_second:.1f} tok/s), finish: {r.finish_reason}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--self-test":  # the installed app's headless check
        argv = ["self-test", *argv[1:]]
    if argv and all(not a.startswith("-") and Path(a).is_file() for a in argv) \
            and argv[0] not in ap._subparsers._group_actions[0].choices:
        from .ui.app import run_app  # `minutely FILE...`: open the app and import them

        return run_app(argv)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("minutely.llama").setLevel(logging.ERROR)
    if args.command is None:
        from .ui.app import run_app

        return run_app()
    from .engine.errors import EngineError, ModelError
    from .media.audio import MediaError

    try:
        if args.command == "ask":
            return cmd_ask(args)
        if args.command == "models":
            from .cli_models import run_models

            return run_models(args)
        if args.command == "transcribe":
            from .cli_transcribe import run_transcribe

            return run_transcribe(args)
        if args.command == "summarize":
            from .cli_summarize import run_summarize

            return run_summarize(args)
        if args.command == "record":
            from .cli_record import run as run_record

            return run_record(args)
        if args.command in ("dictate", "edit"):
            from .cli_dictation import run_dictate, run_edit

            return run_dictate(args) if args.command == "dictate" else run_edit(args)
        if args.command == "self-test":
            from .selftest import run as run_selftest

            return run_selftest(args)
        if args.command == "sessions":
            from .cli_sessions import run_sessions

            return run_sessions(args)
        ap.error(f"unknown command {args.command}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, MediaError) as e:
        _fail(args, e)
        return EXIT_USAGE
    except ModelError as e:  # includes EngineCrashed and download errors
        _fail(args, e)
        return EXIT_MODEL
    except EngineError as e:
        from .engine.errors import EngineCrashed

        _fail(args, e)
        return EXIT_MODEL if isinstance(e, EngineCrashed) else EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: still one line, the details with --debug
        _fail(args, RuntimeError(f"unexpected {type(e).__name__}: {e} (run with --debug for details)"))
        return 1
    return EXIT_OK


def _fail(args, e: BaseException) -> None:
    if args.debug:
        import traceback

        traceback.print_exc()
    msg = " ".join(str(e).split()) or type(e).__name__
    print(f"minutely: error: {msg}", file=sys.stderr)
