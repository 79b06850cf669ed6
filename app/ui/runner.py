"""The one way to run work off the UI thread (the shape of Anki's ``TaskManager``).

``Runner`` has two lanes and one kind of work item, the ``Task`` (app/ui/tasks.py):

- ``runner.run_model(title, fn)`` / ``submit_model(task)``: model work, on the single model
  worker (the loaded model is a single-owner resource); it waits while no model is configured.
- ``runner.run(title, fn)`` / ``submit(task)``: everything else (reading a file, a download,
  copying a model, listing audio devices, a recording, stopping a microphone), on a small pool
  that grows to a few threads while work waits, so a long download never holds up a file import.

Either way ``fn(ctx)`` runs on a worker with ``ctx.progress/count/piece/note``, ``ctx.check()``
and ``ctx.cancel_event``, and ``ctx.library`` (that worker thread's own connection); the Task's
signals (``progress``, ``amount``, ``piece``, ``note``, ``state_changed`` with a ``TaskState``,
``done``, ``failed``) arrive on the main thread. ``task.cancel()`` of a queued task ends it at
once ("cancelled"); a running one stops at its next check. ``task_added`` reports both lanes'
tasks. The main thread owns every Task until its end has reached it, so none is ever freed on a
worker.

``run_on_main(fn, *args)`` and ``callback(method)`` bounce a call from any thread (a callback of
non-Qt code such as the audio player) to the main thread, holding the receiver only weakly.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from .tasks import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    WAITING,
    Cancelled,
    ModelService,
    Task,
    TaskContext,
    TaskState,
)

log = logging.getLogger("minutely.ui.runner")

POOL_THREADS = 4


class _Bounce(QObject):
    call = Signal(object, object)   # a callable, its arguments


class Runner(QObject):
    """The model lane and the pool lane, and the bounce to the main thread."""

    task_added = Signal(object)     # a Task of either lane

    def __init__(self, model: ModelService, pool: ModelService, parent: QObject | None = None):
        super().__init__(parent)
        self.model, self.pool = model, pool
        # re-emitted with bound methods of this object (no lambda holds the runner or a task)
        model.task_added.connect(self.task_added)
        pool.task_added.connect(self.task_added)
        self._bounce = _Bounce()
        self._bounce.call.connect(self._call)

    # -- lanes -------------------------------------------------------------------------------
    # Connect a Task's signals before submitting it: a worker may finish before a later connect,
    # and a signal emitted with no receiver is lost. run()/run_model() connect their hooks first.
    def submit_model(self, task: Task) -> Task:
        return self.model.submit(task)

    def run_model(self, title: str, fn: Callable[[TaskContext], Any], *, on_done=None, on_failed=None,
                  **kw) -> Task:
        return self.submit_model(_hooked(Task(title, fn, **kw), on_done, on_failed))

    def submit(self, task: Task) -> Task:
        """Pool work (needs no model)."""
        if task.needs_model:
            raise ValueError(f"{task.title!r} needs the model: submit_model() runs it on the model worker")
        return self.pool.submit(task)

    def run(self, title: str, fn: Callable[[TaskContext], Any], *, on_done=None, on_failed=None, **kw) -> Task:
        return self.submit(_hooked(Task(title, fn, needs_model=False, **kw), on_done, on_failed))

    # -- the main thread ---------------------------------------------------------------------
    def run_on_main(self, fn: Callable[..., Any], *args) -> None:
        """Call ``fn(*args)`` on the main thread, soon (any thread). A Qt receiver that is gone by
        then is skipped."""
        self._bounce.call.emit(fn, args)

    def callback(self, method: Callable[..., Any]) -> Callable[..., None]:
        """A function any thread may call: it calls the bound ``method`` on the main thread, if its
        object still exists. The caller holds the object only weakly, so a worker never holds the
        last reference to a widget."""
        ref = weakref.WeakMethod(method)
        bounce = weakref.ref(self._bounce)

        def call(*args) -> None:
            b = bounce()
            if b is not None:
                b.call.emit(ref, args)

        return call

    def _call(self, fn, args) -> None:
        if isinstance(fn, weakref.WeakMethod):
            fn = fn()
            if fn is None:
                return
        try:
            fn(*args)
        except RuntimeError as e:  # its widget was deleted meanwhile
            if "already deleted" not in str(e):
                raise

    def shutdown(self) -> None:
        self.model.shutdown()
        self.pool.shutdown()


def _hooked(task: Task, on_done, on_failed) -> Task:
    if on_done is not None:
        task.done.connect(on_done)
    if on_failed is not None:
        task.failed.connect(on_failed)
    return task


__all__ = ["Runner", "Task", "TaskContext", "TaskState", "Cancelled", "POOL_THREADS", "QUEUED",
           "WAITING", "RUNNING", "DONE", "FAILED", "CANCELLED", "FINISHED"]
