"""The window serving its model to other apps on this computer (setting "Serve the model to other
apps on this computer"): the same server as ``minutely serve`` (app/serve), in-process, on
127.0.0.1, sharing the window's model.

Each request becomes a background ``Task`` on the model worker (``Task.background``): it runs
only when no meeting work is queued (live transcription still slips in between, as it does between
the groups of a file job). So the model is loaded once, and another app never starves a meeting.
The requests stay out of the Jobs panel (a chatty tool would bury the meeting jobs); the status bar
says where the server listens. Closing the app cancels them with every other task.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.engine.cancel import Cancellable
from app.engine.protocol import WithCancel
from app.serve.errors import ApiError
from app.serve.gate import Work, model_id_for

from .tasks import CANCELLED, FAILED, Task

log = logging.getLogger("minutely.ui.serving")

TASK_TITLE = "Answering another app"


class _Either:
    """Cancelled when either token is: the HTTP client's (it went away) or the task's (Jobs panel)."""

    def __init__(self, a: Cancellable, b: Cancellable):
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()


class WindowGate:
    """A ``ModelGate`` over the window's services: requests go to the model worker as background tasks."""

    def __init__(self, services: Any):
        self._services = services
        self._pair_info: tuple[tuple[str, str], Any] | None = None

    def _choice(self):
        from app.engine.errors import ModelError
        from app.engine.resolve import resolve_model

        try:
            return resolve_model(None, None, self._services.settings)
        except ModelError:
            raise ApiError(503, "no model is set up in Minutely yet (Tools > Model)", code="model_unavailable") \
                from None

    def _info(self):
        from app.engine.gguf_check import check_pair

        c = self._choice()
        key = (str(c.model), str(c.mmproj))
        if self._pair_info is None or self._pair_info[0] != key:
            self._pair_info = (key, check_pair(c.model, c.mmproj))
        return self._pair_info[1]

    def model_id(self) -> str:
        return model_id_for(self._choice().model)

    def supports_audio(self) -> bool:
        return bool(self._info().has_audio)

    def supports_vision(self) -> bool:
        return bool(self._info().has_vision)

    def submit(self, work: Work, cancel: Cancellable) -> None:
        """Any thread: the task is made and queued on the main thread (a Task is the main thread's)."""
        self._services.runner.run_on_main(_queue, self._services, work, cancel)


def _queue(services: Any, work: Work, cancel: Cancellable) -> None:
    if services.closed:
        work(None)
        return
    ran: list[bool] = []

    def fn(ctx) -> None:
        engine = ctx.engine.engine  # loads the model if needed (a failure: the task fails, see ended)
        ran.append(True)
        work(WithCancel(engine, _Either(cancel, ctx.cancel_event)))

    task = Task(TASK_TITLE, fn, kind="serve", background=True)

    def ended(state: str) -> None:
        if state in (CANCELLED, FAILED) and not ran:
            work(None)  # dropped before it ran: the client hears so instead of waiting

    task.state_changed.connect(ended)
    services.runner.submit_model(task)


class ModelServing(QObject):
    """Starts and stops the in-process server as the setting says."""

    changed = Signal(str)  # one line for the status bar

    def __init__(self, services: Any, parent: QObject | None = None):
        super().__init__(parent)
        self.services = services
        self.server: Any = None
        self.error = ""

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def apply(self) -> None:
        """Serve if the settings say so (on their port), else stop."""
        s = self.services.settings
        want = bool(s.serve_model) and not self.services.closed
        if want and s.model_server:  # the model is not here: other apps should ask that server
            if self.server is not None:
                self.stop()
            self.error = f"the model runs on {s.model_server}: point other apps there"
            self.changed.emit(f"Not serving the model to other apps: {self.error}")
            return
        if self.server is not None and (not want or self.server.port != s.serve_port):
            self.stop()
        if want and self.server is None:
            from app.serve.server import ServeError, Server

            try:
                self.server = Server(WindowGate(self.services), "127.0.0.1", s.serve_port)
            except ServeError as e:
                self.error = str(e)
                self.changed.emit(f"Could not serve the model to other apps: {e}")
                return
            self.server.start()
            self.error = ""
            self.changed.emit(f"Serving the model to other apps at {self.server.url}")

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()
            self.changed.emit("Stopped serving the model to other apps")
