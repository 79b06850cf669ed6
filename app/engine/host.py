"""EngineHost: the Engine's API, with the model living in a supervised child process.

A native crash in llama.cpp (segfault, abort, an out-of-memory kill) must never
take down the window or a recording in progress. The host spawns a child
(multiprocessing "spawn": no inherited Qt or audio state), which loads the
Engine and answers requests over a pipe; text pieces stream back as they are
decoded. Cancel belongs to a request: the host forwards a request's token to
the child (a shared Event, cleared before each request) only while that request
is the one in flight, so cancelling one caller's work never stops another's. If the child dies, the call in
flight raises ``EngineCrashed`` with what happened, and the next call starts a
fresh child. The files are validated in the parent first, so a wrong file is
reported without spawning anything.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

from . import cpucheck, errors
from .cancel import Cancellable, CancelToken
from .config import EngineConfig
from .engine import Engine
from .errors import EngineCrashed, EngineError, ModelError
from .generation import GenerateOptions, Reply, Stream, resolve_options
from .gguf_check import MODEL_ARCH, check_pair
from .messages import Message, as_messages

log = logging.getLogger("minutely.engine.host")

_POLL = 0.05  # seconds between liveness checks while waiting on the child


def _child_main(conn, cancel, cpu_variant, model, mmproj, config, chat_template,
                require_arch, drafter=None) -> None:
    """Entry point of the engine process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        cpucheck.load(cpu_variant)  # the parent's CPU check chose it
        engine = Engine(model, mmproj, config, chat_template=chat_template,
                        require_arch=require_arch, drafter=drafter)
    except cpucheck.CPUUnsupported as e:  # a model problem for the parent (exit 3)
        conn.send(("error", "ModelError", str(e)))
        return
    except EngineError as e:
        conn.send(("error", type(e).__name__, str(e)))
        return
    except Exception as e:  # pragma: no cover - unexpected load failure
        conn.send(("error", "ModelError", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", {"audio": engine.supports_audio, "vision": engine.supports_vision,
                         "n_ctx": engine.n_ctx, "drafter": engine.has_drafter}))
    while True:
        try:
            req = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        kind = req[0]
        if kind == "close":
            break
        try:
            if kind == "chat":
                s = engine.stream(req[1], req[2], cancel=cancel)
                for piece in s:
                    conn.send(("piece", piece))
                conn.send(("done", s.reply))
            elif kind == "batch":
                conn.send(("done", engine.chat_batch(req[1], req[2], cancel=cancel)))
            elif kind == "count":
                conn.send(("done", engine.count_tokens(req[1], req[2])))
            elif kind == "reset":
                engine.reset()
                conn.send(("done", None))
            else:
                conn.send(("error", "EngineError", f"unknown request {kind!r}"))
        except (BrokenPipeError, EOFError):
            break
        except EngineError as e:
            conn.send(("error", type(e).__name__, str(e)))
        except Exception as e:
            conn.send(("error", "EngineError", f"{type(e).__name__}: {e}"))
    engine.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class EngineHost:
    """Same calls as Engine (stream, chat, cancel, count_tokens, reset, close)."""

    def __init__(self, model: str | Path, mmproj: str | Path | None = None,
                 config: EngineConfig | None = None, *, chat_template: str | None = None,
                 require_arch: str | None = MODEL_ARCH, load_timeout: float = 900.0,
                 drafter: str | Path | None = None):
        self.info = check_pair(model, mmproj, require_arch)
        self._args = (str(model), None if mmproj is None else str(mmproj),
                      config or EngineConfig(), chat_template, require_arch,
                      None if drafter is None else str(drafter))
        self._mp = mp.get_context("spawn")
        self._cancel = self._mp.Event()  # the child's view of the in-flight request's token
        self._active: Cancellable | None = None
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self._load_timeout = load_timeout
        self.caps: dict[str, Any] = {}
        self.restarts = 0  # children started after the first (crash recoveries)
        self._started = 0
        self.last: Reply | None = None

    # -- lifecycle ----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        """Start the child and load the model now (otherwise the first call does)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._reap()
        # Which CPU code runs llama.cpp here: checked once per machine in throw-away
        # children, so an instruction this CPU lacks is a one-line ModelError
        # (CPUUnsupported), never a model process that dies at every start.
        variant = cpucheck.check().variant
        parent, child = self._mp.Pipe()
        proc = self._mp.Process(target=_child_main,
                                args=(child, self._cancel, variant, *self._args),
                                name="minutely-engine", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if self._started:
            self.restarts += 1
        self._started += 1
        deadline = time.monotonic() + self._load_timeout
        try:
            msg = self._recv(deadline, loading=True)
        except BaseException:
            self._kill()
            raise
        if msg[0] == "error":
            self._kill()
            raise self._error(msg)
        self.caps = msg[1]

    def _recv(self, deadline: float | None = None, loading: bool = False,
              token: Cancellable | None = None):
        while True:
            if token is not None and token.is_set():
                self._cancel.set()  # the request in flight was cancelled: tell the child
            try:
                if self._conn.poll(_POLL):
                    return self._conn.recv()
            except (EOFError, OSError):
                pass  # the child is gone; fall through to the liveness check
            else:
                if self._proc.is_alive():
                    if deadline is not None and time.monotonic() > deadline:
                        raise EngineCrashed("the model process did not answer in time")
                    continue
            self._proc.join(timeout=5)
            what = "loading the model" if loading else "answering"
            code = self._proc.exitcode
            self._reap()
            raise EngineCrashed(f"the model process {_describe_exit(code)} while {what}")

    @staticmethod
    def _error(msg) -> EngineError:
        cls = getattr(errors, msg[1], None)
        if not (isinstance(cls, type) and issubclass(cls, EngineError)):
            cls = EngineError
        return cls(msg[2])

    def _reap(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None
        self._proc = None

    def _kill(self) -> None:
        p = self._proc
        if p is not None and p.is_alive():
            p.kill()
            p.join(timeout=5)
        self._reap()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to exit; kill it if it does not within ``timeout``."""
        self._cancel.set()
        with self._lock:
            p = self._proc
            if p is None:
                return
            try:
                self._conn.send(("close",))
            except (OSError, BrokenPipeError):
                pass
            p.join(timeout)
            if p.is_alive():
                p.kill()
                p.join(5)
            self._reap()

    def __enter__(self) -> EngineHost:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- calls --------------------------------------------------------------
    @property
    def supports_audio(self) -> bool:
        return self.info.has_audio

    @property
    def supports_vision(self) -> bool:
        return self.info.has_vision

    @property
    def supports_thinking(self) -> bool:
        return "enable_thinking" in (self._args[3] or self.info.model.get("tokenizer.chat_template") or "")

    @property
    def n_ctx(self) -> int:
        return int(self.caps.get("n_ctx") or self._args[2].n_ctx)

    def cancel(self) -> None:
        """Stop the request in flight within one token (any thread): cancels its token."""
        active = self._active
        if active is not None and hasattr(active, "set"):
            active.set()
        self._cancel.set()

    def stream(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
               cancel: Cancellable | None = None, **kw) -> Stream:
        """Text pieces as the child decodes them; ``cancel``: this request's token."""
        msgs = as_messages(messages)
        opts = resolve_options(options, kw)
        return Stream(self._run_chat(msgs, opts, cancel if cancel is not None else CancelToken()))

    def chat(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
             cancel: Cancellable | None = None, **kw) -> Reply:
        return self.stream(messages, options, cancel=cancel, **kw).consume()

    def _begin(self, token: Cancellable) -> bool:
        """Under the lock: make ``token``'s request the one in flight; False if it was
        cancelled while it waited (it does not run)."""
        if token.is_set():
            return False
        self._ensure()
        self._cancel.clear()  # a cancel meant for an earlier request ends with it
        self._active = token
        return True

    def _run_chat(self, msgs: list[Message], opts: GenerateOptions, token: Cancellable) -> Generator[str, None, Reply]:
        with self._lock:
            if not self._begin(token):
                self.last = Reply(finish_reason="cancelled")
                return self.last
            try:
                try:
                    self._conn.send(("chat", msgs, opts))
                except (OSError, BrokenPipeError):
                    self._recv()  # raises EngineCrashed with the child's fate
                while True:
                    msg = self._recv(token=token)
                    if msg[0] == "piece":
                        try:
                            yield msg[1]
                        except GeneratorExit:
                            # Abandoned mid-answer: stop the child and drain the
                            # rest so the next call starts on a clean pipe.
                            self._cancel.set()
                            while self._recv()[0] == "piece":
                                pass
                            raise
                    elif msg[0] == "done":
                        self.last = msg[1]
                        return msg[1]
                    else:
                        raise self._error(msg)
            finally:
                self._active = None

    def _call(self, *req, token: Cancellable | None = None):
        with self._lock:
            if token is not None:
                if not self._begin(token):
                    return None
            else:
                self._ensure()
            try:
                try:
                    self._conn.send(req)
                except (OSError, BrokenPipeError):
                    pass  # the child died: _recv says how, as EngineCrashed
                msg = self._recv(token=token)
                if msg[0] == "error":
                    raise self._error(msg)
                return msg[1]
            finally:
                self._active = None

    def chat_batch(self, conversations, options: GenerateOptions | None = None, *,
                   cancel: Cancellable | None = None, **kw) -> list[Reply]:
        """Several conversations at once (parallel sequences in the child's context)."""
        convs = [as_messages(c) for c in conversations]
        opts = resolve_options(options, kw)
        out = self._call("batch", convs, opts, token=cancel if cancel is not None else CancelToken())
        return out if out is not None else [Reply(finish_reason="cancelled") for _ in convs]

    def count_tokens(self, messages: Iterable[Message | dict], image_tokens: int | None = None) -> int:
        return self._call("count", as_messages(messages), image_tokens)

    def reset(self) -> None:
        self._call("reset")


__all__ = ["EngineHost", "EngineCrashed", "ModelError"]
