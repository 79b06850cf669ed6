"""What every command of ``python main.py <command>`` shares: exit codes, the usage error, the model
arguments, settings and the engine configuration, input-file checks and one-line messages.

Import-light on purpose (the window starts through the command line): the engine, numpy and Qt are
imported by the commands when they run, never here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import MinutelyError, one_line
from ..settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(MinutelyError):
    """Bad arguments or input files (exit 2)."""


def add_model_args(p: argparse.ArgumentParser, *, server: bool = True) -> None:
    """``--model/--mmproj/--threads/--ctx/--gpu-layers/--server/--no-drafter`` for a command that loads the model."""
    g = p.add_argument_group("model")
    g.add_argument("--model", help="language model GGUF (else $MINUTELY_MODEL, else settings)")
    g.add_argument("--mmproj", help="its projector GGUF (else $MINUTELY_MMPROJ, else settings)")
    g.add_argument("--threads", type=int, help="CPU threads (default: from settings, 0 = auto)")
    g.add_argument("--ctx", type=int, help="context size in tokens")
    g.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (-1 = all)")
    if server:  # not for `serve` itself: it serves this computer's model
        g.add_argument("--server", metavar="URL",
                       help="use the model on an OpenAI-compatible server (else settings; '' = this computer)")
    g.add_argument("--no-drafter", action="store_true",
                   help="decode without the model's MTP drafter (else settings; $MINUTELY_DRAFTER names one)")


def add_actions(sub, name: str, help: str, dest: str):
    """A command made of actions (``models list``, ``sessions show``): its subparsers, one required."""
    return sub.add_parser(name, help=help).add_subparsers(dest=dest, metavar="ACTION", required=True)


def add_action(actions, name: str, help: str, run) -> argparse.ArgumentParser:
    """One action of such a command; ``run(args)`` runs it."""
    p = actions.add_parser(name, help=help)
    p.set_defaults(run=run)
    return p


def load_settings() -> Settings:
    return Settings.load()


def engine_config(args: argparse.Namespace, settings: Settings):
    """The settings' engine configuration with the command's ``--threads/--ctx/--gpu-layers``."""
    from ..engine.config import EngineConfig

    cfg = EngineConfig.from_settings(settings)
    if getattr(args, "threads", None) is not None:
        cfg.n_threads = args.threads
    if getattr(args, "ctx", None) is not None:
        cfg.n_ctx = args.ctx
    if getattr(args, "gpu_layers", None) is not None:
        cfg.n_gpu_layers = args.gpu_layers
    if getattr(args, "no_drafter", False):
        cfg.n_draft = 0
    return cfg


def remote_engine(args: argparse.Namespace, settings: Settings):
    """The model on a server (``--server``, else the settings' ``model_server``), or None: the model
    on this computer. ``--model`` (or ``$MINUTELY_MODEL``, which outranks the settings) means this
    computer; ``--server`` with ``--model`` is refused. ``--ctx`` sizes prompts for the server too."""
    import os

    from ..engine.remote import server_engine
    from ..engine.resolve import ENV_MODEL

    server = getattr(args, "server", None)
    if getattr(args, "model", None):
        if server:
            raise UsageError("give --server or --model, not both (--server '' means this computer)")
        return None
    if server is None and os.environ.get(ENV_MODEL):
        return None
    return server_engine(settings, server, n_ctx=getattr(args, "ctx", None))


def need_file(path: str, what: str) -> Path:
    """An input file that must exist (UsageError naming ``what`` otherwise)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path} is a directory")
    if not p.is_file():
        raise UsageError(f"{what} not found: {path}")
    return p


def say(text: str) -> None:
    """A note for the person at the terminal: one line on stderr."""
    print(f"minutely: {text}", file=sys.stderr, flush=True)


def open_library():
    """The library, its notice (repaired, migrated, ...) said on stderr."""
    from ..library import Library

    lib = Library.open()
    if lib.notice:
        say(lib.notice)
    return lib


def fail(args: argparse.Namespace, e: BaseException) -> None:
    """An error as one line on stderr (the traceback too with ``--debug``)."""
    if args.debug:
        import traceback

        traceback.print_exc()
    print(f"minutely: error: {one_line(e)}", file=sys.stderr)
