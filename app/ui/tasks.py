"""The model's one worker: every piece of model work in the app runs here.

The loaded model is a single-owner resource, so it gets a single thread (as
Anki does with its collection): ``ModelService.submit(title, fn)`` queues a
``Task``; the worker thread runs ``fn(ctx)`` where ``ctx`` gives the engine
(an ``EngineHost``: the model itself runs in a supervised child process), a
library connection of the worker's own, progress/stream hooks and a cancel
flag. Results come back to the main thread as Qt signals on the ``Task``
(queued connections: the Task lives in the main thread), so widgets are only
ever touched by the main thread.

The same class with ``workers`` > 1 and no model is the runner's pool
(``services.io``); ``runner.Runner`` is the front of both lanes.

Tasks that need a model wait in the queue while none is configured
("waiting for a model"), so recording and importing work before a model
exists; ``model_changed()`` wakes them once one is.

A Task is a QObject of the main thread, and the main thread also owns it: the
service keeps every submitted Task until its final state reaches the main
thread, and the worker drops its own references before it reports that state
(by key, not by reference). So a Task is never destroyed on the worker — a
QObject deleted on a thread other than its own can be deleted while its
thread delivers an event to it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine.cancel import CancelToken
from app.engine.protocol import WithCancel
from app.errors import one_line

log = logging.getLogger("minutely.ui.tasks")


class TaskState(StrEnum):
    """Where a Task is; the values are what the Jobs panel shows (and what older code compares with)."""

    QUEUED = "queued"
    WAITING = "waiting for a model"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED = TaskState
FINISHED = (DONE, FAILED, CANCELLED)


def _background_priority() -> None:
    """Run this thread (and the threads and model process it starts, which inherit it) at a
    lower CPU priority, so the window stays responsive while a job uses every core (Linux:
    the nice value is per thread; elsewhere this does nothing)."""
    import os

    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
        except OSError:
            pass


class Cancelled(Exception):
    """Raised inside a task by ``ctx.check()`` once the user cancelled it."""


class Task(QObject):
    """One queued piece of work; its signals arrive on the main thread."""

    progress = Signal(float)       # fraction done, 0..1 (throttled)
    message = Signal(str)          # a status line ("3/40 utterances")
    piece = Signal(str)            # streamed text
    note = Signal(object)          # anything else a task reports on the way (e.g. a tool call)
    amount = Signal(object, object)  # done, total (bytes may pass 2**31: object, not int)
    state_changed = Signal(str)
    done = Signal(object)          # fn's return value
    failed = Signal(str)           # one line for the user

    def __init__(self, title: str, fn: Callable[[TaskContext], Any], *, kind: str = "task",
                 needs_model: bool = True, session_id: int | None = None,
                 retry: Callable[[], Task | None] | None = None, background: bool = False):
        super().__init__()
        self.title = title
        self.fn = fn
        self.kind = kind
        self.needs_model = needs_model
        self.background = background  # runs only when no other queued task can (another app's request)
        self.session_id = session_id
        self.retry_fn = retry      # builds a fresh Task doing the same work
        self._waiting = False      # said "waiting for a model" (the worker's queue)
        self.state = QUEUED        # changed on the main thread only, with state_changed: a test or a
        #                            widget that sees `finished` also sees every slot of it has run
        self.fraction = 0.0
        self.status = ""
        self.error = ""
        self.result: Any = None
        self.cancel_event = CancelToken()  # this task's requests carry it (engine.cancel)
        self._ended = threading.Event()  # fn has returned (or will never run): see wait()
        self._service: Callable[[], ModelService | None] = lambda: None  # a weak reference, set
        #                            by submit: the service holds its tasks, not the other way round
        self._key = 0              # the service's handle for it (set by submit)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def cancel(self) -> None:
        """Stop it: a queued task never starts (and says "cancelled" at once), a running one stops at
        its next check."""
        self.cancel_event.set()
        service = self._service()
        if service is not None:
            service._cancel(self)
            service._drop_queued(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until its function has returned (any thread); False at the timeout. The signals
        still come through the main thread's event loop afterwards."""
        return self._ended.wait(timeout)

    # called on the main thread through the queued connection below
    def _set_state(self, state: str) -> None:
        self.state = TaskState(state)
        self.state_changed.emit(self.state)


class TaskContext:
    """What a task's function gets on the worker thread."""

    def __init__(self, service: ModelService, task: Task):
        self._service = service
        self._task = task
        self._last = 0.0

    @property
    def cancel_event(self) -> CancelToken:
        return self._task.cancel_event

    @property
    def engine(self) -> WithCancel:
        """The loaded engine, its requests carrying this task's cancel token: cancelling the task
        stops its request in flight, never another caller's (live transcription)."""
        return WithCancel(self._service._engine_now(), self._task.cancel_event)

    def engine_factory(self) -> WithCancel:
        """The engine, loaded only when first called (bad input fails before a model load)."""
        return self.engine

    @property
    def library(self):
        return self._service._worker_library()

    def check(self) -> None:
        if self._task.cancel_event.is_set():
            raise Cancelled()

    def progress(self, fraction: float, status: str | None = None) -> None:
        now = time.monotonic()
        if now - self._last < 0.05 and fraction < 1.0:
            return  # the UI needs ~20 updates a second at most
        self._last = now
        self._task.fraction = fraction
        self._task.progress.emit(float(fraction))
        if status is not None:
            self._task.status = status
            self._task.message.emit(status)

    def piece(self, text: str) -> None:
        self._task.piece.emit(text)

    def note(self, obj: Any) -> None:
        self._task.note.emit(obj)

    def count(self, done: int, total: int) -> None:
        """Progress in units (bytes): every call reaches ``Task.amount``; ``progress`` is throttled."""
        self._task.amount.emit(int(done), int(total))
        if total:
            self.progress(min(1.0, done / total))


class _Relay(QObject):
    """Carries state changes from the worker to the main thread."""

    state = Signal(object, str)    # a task's key (never the Task: see the module's docstring), state
    model_state = Signal(str)


class ModelService(QObject):
    """Owns the engine host and the single worker thread that uses it.

    A second instance with no model (``services.io``, ``workers`` > 1: a small pool that grows
    to that many threads as work waits) runs work that must not wait behind a long
    transcription: reading a dropped file, a download, a recording. ``runner.Runner`` is the
    front of both."""

    task_added = Signal(object)        # Task
    model_state = Signal(str)          # "no model", "loading", "ready", "error: ..."

    def __init__(self, data_dir: Path, settings_fn: Callable[[], Any],
                 engine_factory: Callable[[], Any] | None = None, parent: QObject | None = None,
                 name: str = "minutely-model", workers: int = 1):
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        self._settings_fn = settings_fn
        self._factory = engine_factory  # None: the configured model in an EngineHost (not a bound
        #                                 method stored here: that would be a reference cycle)
        self._queue: deque[Task] = deque()
        self._tasks: dict[int, Task] = {}  # every unfinished Task, by key: the main thread's references
        self._keys = itertools.count(1)
        self._cv = threading.Condition()
        self._stop = False
        self._engine: Any = None
        self._engine_error: str | None = None
        self._engine_lock = threading.RLock()
        self._current: Task | None = None
        self._local = threading.local()  # each worker thread's own library connection
        self.state = "no model"
        self._relay = _Relay()
        self._relay.state.connect(self._on_task_state)
        self._relay.model_state.connect(self._on_model_state)
        self._name, self._workers, self._idle = name, max(1, workers), 0
        self._threads: list[threading.Thread] = []
        self._thread = self._spawn()

    def _spawn(self) -> threading.Thread:
        """Start one more worker thread (under the lock, or before any task exists)."""
        n = len(self._threads)
        t = threading.Thread(target=self._run, name=self._name if not n else f"{self._name}-{n + 1}", daemon=True)
        self._threads.append(t)
        t.start()
        return t

    # -- main thread API ------------------------------------------------------
    def submit(self, task: Task) -> Task:
        task._service = weakref.ref(self)
        with self._cv:
            task._key = next(self._keys)
            self._tasks[task._key] = task
            self._queue.append(task)
            if self._idle < len(self._queue) and len(self._threads) < self._workers and not self._stop:
                self._spawn()  # the pool grows while work waits and no thread is free
            self._cv.notify_all()
        self.task_added.emit(task)
        return task

    def run(self, title: str, fn: Callable[[TaskContext], Any], **kw) -> Task:
        return self.submit(Task(title, fn, **kw))

    def has_model(self) -> bool:
        from app.engine.errors import ModelError
        from app.engine.resolve import resolve_model

        if self._settings_fn().model_server:
            return True  # the model is on a server the user named
        try:
            resolve_model(None, None, self._settings_fn())
        except ModelError:
            return False
        return True

    def model_changed(self) -> None:
        """The configured model changed: unload the old one, wake waiting tasks."""
        with self._cv:
            self._reload = True
            self._cv.notify_all()

    def preload(self) -> None:
        """Load the model in the background now, if one is configured."""
        with self._cv:
            self._want_load = True
            self._cv.notify_all()

    def pending(self) -> list[Task]:
        with self._cv:
            return [t for t in self._queue if not t.finished]

    def _drop_queued(self, task: Task) -> None:
        """Main thread: a cancelled task still in the queue leaves it now and says so at once
        (it never runs), instead of staying "queued" until a worker gets to it."""
        with self._cv:
            try:
                self._queue.remove(task)
            except ValueError:
                return  # running or finished: it ends at its next check
            task._ended.set()
        self._relay.state.emit(task._key, CANCELLED)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            for t in self._tasks.values():  # queued and running (a pool runs several)
                t.cancel_event.set()
            cur = self._current
            self._cv.notify_all()
        if cur is not None:
            self._cancel(cur)
        deadline = time.monotonic() + timeout
        for th in list(self._threads):
            th.join(max(0.0, deadline - time.monotonic()))
        if any(th.is_alive() for th in self._threads):
            # A worker outlived the join: its thread still references this service (its target),
            # and would drop that last reference on itself when it ends; kept here, it is let go
            # on the main thread once the thread has ended (a QObject dies on its own thread).
            _OUTLIVED.append(self)
            _reap_later()
        else:
            with self._cv:  # what will never run is let go here, on the main thread
                for t in self._queue:
                    self._tasks.pop(t._key, None)
                self._queue.clear()
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("closing the engine")
            self._engine = None

    # -- internals -------------------------------------------------------------
    _reload = False
    _want_load = False

    def _on_model_state(self, state: str) -> None:
        self.state = state
        self.model_state.emit(state)

    def _on_task_state(self, key: int, state: str) -> None:
        """Main thread: a task's state from the worker; a finished task is let go here."""
        with self._cv:
            task = self._tasks.pop(key, None) if state in FINISHED else self._tasks.get(key)
        if task is not None:
            task._set_state(state)

    def _cancel(self, task: Task) -> None:
        """The task's token is cancelled (its request in flight stops by itself): wake the
        worker, so a queued task is dropped."""
        with self._cv:
            self._cv.notify_all()

    def _default_factory(self):
        from app.engine.config import EngineConfig
        from app.engine.host import EngineHost
        from app.engine.remote import server_engine
        from app.engine.resolve import resolve_model

        settings = self._settings_fn()
        remote = server_engine(settings)
        if remote is not None:
            remote.check()  # "ready" only once the server answers (else its one-line error)
            return remote
        choice = resolve_model(None, None, settings)
        host = EngineHost(choice.model, choice.mmproj, EngineConfig.from_settings(settings),
                          drafter=choice.drafter)
        host.start()
        return host

    def shared_engine(self):
        """The loaded engine for a caller outside the worker that cannot wait behind a long task
        (live transcription): the EngineHost serializes calls itself, one at a time, so a live
        utterance slips in between the groups of a file transcription. Any thread."""
        return self._engine_now()

    def _engine_now(self):
        with self._engine_lock:
            return self._engine_locked()

    def _engine_locked(self):
        if self._engine is None:
            self._relay.model_state.emit("loading")
            try:
                self._engine = (self._factory or self._default_factory)()
            except Exception as e:
                msg = one_line(e)
                self._relay.model_state.emit(f"error: {msg}")
                raise
            self._relay.model_state.emit("ready")
        return self._engine

    def _worker_library(self):
        lib = getattr(self._local, "lib", None)
        if lib is None:
            from app.library import Library

            lib = self._local.lib = Library.open(self.data_dir)
        return lib

    def _next(self) -> Task | None:
        """The first task that can run now (None: stop)."""
        with self._cv:
            while True:
                if self._stop:
                    return None
                if self._reload:
                    self._reload = False
                    self._unload()
                    if not self.has_model():
                        self._relay.model_state.emit("no model")
                if self._want_load:
                    self._want_load = False
                    self._cv.release()
                    try:
                        if self._engine is None and self.has_model():
                            self._engine_now()
                    except Exception:  # noqa: BLE001 - reported through model_state
                        pass
                    finally:
                        self._cv.acquire()
                    continue
                while self._queue and self._queue[0].cancel_event.is_set():
                    gone = self._queue.popleft()
                    gone._ended.set()
                    self._relay.state.emit(gone._key, CANCELLED)
                    del gone
                if self._pick():
                    return self._current
                self._idle += 1
                try:
                    self._cv.wait(0.5 if self._queue else None)
                finally:
                    self._idle -= 1

    def _pick(self) -> bool:
        """Move the first task that can run now from the queue to ``_current`` (under the lock):
        the app's own work first, in order, then background work (requests from other apps).
        A function of its own so that no loop variable keeps a task referenced on the worker."""
        model_ok = None
        for t in sorted(self._queue, key=lambda q: q.background):  # stable: in order within each
            if t.cancel_event.is_set():
                continue
            if t.needs_model:
                if model_ok is None:
                    model_ok = self._engine is not None or self.has_model()
                if not model_ok:
                    if not t._waiting:
                        t._waiting = True
                        self._relay.state.emit(t._key, WAITING)
                    continue
            self._queue.remove(t)
            self._current = t
            return True
        return False

    def _execute(self, task: Task) -> str:
        """Worker: run one task; its final state (reported by the caller)."""
        self._relay.state.emit(task._key, RUNNING)
        ctx = TaskContext(self, task)
        try:
            return self._outcome(task, ctx)
        finally:
            task._ended.set()

    def _outcome(self, task: Task, ctx: TaskContext) -> str:
        try:
            if task.cancel_event.is_set():
                raise Cancelled()
            result = task.fn(ctx)
        except Cancelled:
            return CANCELLED
        except BaseException as e:  # noqa: BLE001 - every failure becomes one line for the user
            if task.cancel_event.is_set():
                return CANCELLED
            # the traceback as text: a log record holding the traceback would hold this frame,
            # and with it the task, for as long as a handler keeps the record
            log.warning("task %r failed\n%s", task.title, "".join(traceback.format_exception(e)).rstrip())
            task.error = one_line(e)
            task.failed.emit(task.error)
            return FAILED
        task.result = result
        task.done.emit(result)
        return DONE

    def _unload(self) -> None:
        with self._engine_lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the engine")
            self._engine = None

    def _run(self) -> None:
        _background_priority()
        while True:
            task = self._next()
            if task is None:
                break
            key = task._key
            state = self._execute(task)
            # The worker lets go of the task before it reports the end (by key): the main thread
            # holds it in _tasks until then, so the last reference is always dropped there.
            del task
            with self._cv:
                self._current = None
            self._relay.state.emit(key, state)
        lib, self._local.lib = getattr(self._local, "lib", None), None
        if lib is not None:
            lib.close()


_OUTLIVED: list[ModelService] = []  # shut down, but a worker thread was still running


def _reap_later() -> None:
    """Main thread: let go of the outlived services whose threads have ended (checked each second)."""
    _OUTLIVED[:] = [s for s in _OUTLIVED if any(t.is_alive() for t in s._threads)]
    if _OUTLIVED:
        QTimer.singleShot(1000, _reap_later)
