"""Where a request meets the model: a ``ModelGate``.

The server never holds the model itself: it hands ``work(engine)`` to a gate, which runs it when the
model is free, with an engine whose requests carry the request's cancel token. ``work`` is called
exactly once: with the engine, or with ``None`` when the request will never run (the app dropped
it, or is shutting down). Two gates exist: ``EngineGate`` here (``minutely serve``: its own
``EngineHost``, requests one at a time in arrival order) and the window's, which queues each
request on the app's model worker behind meeting work (app/ui/serving.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from app.engine.cancel import Cancellable
from app.engine.protocol import ChatEngine, WithCancel

Work = Callable[[ChatEngine | None], None]


class ModelGate(Protocol):
    def model_id(self) -> str: ...

    def supports_audio(self) -> bool: ...

    def supports_vision(self) -> bool: ...

    def submit(self, work: Work, cancel: Cancellable) -> None: ...


def model_id_for(path: str | Path) -> str:
    """The id a client names the model by: the GGUF's file name without ``.gguf``."""
    name = Path(path).name
    return name[:-5] if name.lower().endswith(".gguf") else name


class EngineGate:
    """An engine (an ``EngineHost`` or ``Engine``) behind one thread: requests run one at a time, in
    the order they came; a request cancelled while it waits returns at once without running."""

    def __init__(self, engine: Any, model_path: str | Path):
        self._engine = engine
        self._id = model_id_for(model_path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minutely-serve")
        self._closed = threading.Event()

    def model_id(self) -> str:
        return self._id

    def supports_audio(self) -> bool:
        return bool(self._engine.supports_audio)

    def supports_vision(self) -> bool:
        return bool(self._engine.supports_vision)

    def submit(self, work: Work, cancel: Cancellable) -> None:
        def run() -> None:
            work(None if self._closed.is_set() else WithCancel(self._engine, cancel))

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            work(None)

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
