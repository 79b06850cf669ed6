"""``python main.py <command>``: Minutely without a window.

Each command is a module of this package that adds its parser with ``register(sub)`` and names
the function that runs it with ``set_defaults(run=...)``; ``main`` parses and calls ``args.run(args)``.
What the commands share is in ``common`` (they import nothing else from here).

Exit codes: 0 ok; 1 nothing heard, a broken installation (self-test) or a bug; 2 bad usage or input
(a missing or unreadable file); 3 a model problem (missing, wrong or damaged model files, the model
process crashed); 130 interrupted. Errors are one line on stderr, never a traceback (``--debug``
shows it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import __version__
from ..errors import MinutelyError
from . import ask, calendar, dictation, models, record, selftest, serve, sessions, summarize, transcribe
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, UsageError, fail

# the order of `--help`
COMMANDS = (models, sessions, transcribe, summarize, record, dictation, calendar, selftest, ask, serve)


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    ap = argparse.ArgumentParser(prog="minutely", description="Minutely, the offline meeting assistant.")
    ap.add_argument("--version", action="version", version=f"Minutely {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return ap, sub.choices


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def main(argv: list[str] | None = None) -> int:
    ap, commands = _build()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--self-test":  # the installed app's headless check
        argv = ["self-test", *argv[1:]]
    if argv and all(not a.startswith("-") and Path(a).is_file() for a in argv) and argv[0] not in commands:
        from ..ui.app import run_app  # `minutely FILE...`: open the app and import them

        return run_app(argv)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("minutely.llama").setLevel(logging.ERROR)
    if args.command is None:
        from ..ui.app import run_app

        return run_app()
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command, its errors turned into one line and an exit code."""
    from ..engine.errors import EngineCrashed, EngineError, ModelError  # loads llama.cpp: not for the window
    from ..media.audio import MediaError

    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, MediaError) as e:
        fail(args, e)
        return EXIT_USAGE
    except ModelError as e:  # includes download errors
        fail(args, e)
        return EXIT_MODEL
    except EngineError as e:
        fail(args, e)
        return EXIT_MODEL if isinstance(e, EngineCrashed) else EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except MinutelyError as e:  # a library, export, recording ... error: written for the user
        fail(args, e)
        return EXIT_FAILED
    except Exception as e:  # a bug: still one line, the details with --debug
        fail(args, RuntimeError(f"unexpected {type(e).__name__}: {e} (run with --debug for details)"))
        return EXIT_FAILED
