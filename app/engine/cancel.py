"""A request's own cancel flag.

Cancel belongs to a request, not to the engine: the loaded model is shared (a file job on the
model worker, live transcription slipping in between), so "cancel" must stop exactly the request
the user meant. Each request carries a token; the engine checks it between tokens while that
request runs, and the host forwards it to the model process only while the request is the one in
flight. A token cancelled while its request waits for the model is kept: the request returns
"cancelled" without running.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Cancellable(Protocol):
    """What an engine reads: a CancelToken, ``threading.Event`` or ``multiprocessing.Event``."""

    def is_set(self) -> bool: ...


class CancelToken(threading.Event):
    """Thread-safe; cancelled once, from any thread, never reset (an Event that only sets)."""

    def cancel(self) -> None:
        self.set()

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def clear(self) -> None:  # a token is not reused: a cleared cancel would be lost
        raise TypeError("a CancelToken is not reset; make a new one for a new request")
