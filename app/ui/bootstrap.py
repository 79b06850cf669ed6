"""One bootstrap builds everything the window needs, then the window gets it.

``build_services()`` opens the library (checked, migrated, set aside if
damaged), reads the settings and starts the model worker. Nothing in app/ui
builds its own globals: widgets receive the ``Services`` they use.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import paths
from app.library import Library
from app.settings import Settings

from .runner import POOL_THREADS, Runner
from .tasks import ModelService

log = logging.getLogger("minutely.ui")


@dataclass
class Services:
    data_dir: Path
    settings: Settings
    library: Library               # the main thread's connection (reads, small writes)
    model: ModelService            # the one worker that runs model work
    io: ModelService               # the small pool for work that needs no model
    runner: Runner                 # the front of both: submit work, bounce calls to the main thread
    notices: list[str] = field(default_factory=list)  # one-line messages to show once
    closed: bool = False           # set at shutdown: late signals and timers must not touch the library

    def save_settings(self) -> None:
        self.settings.save(self.data_dir / "settings.json")

    def close(self) -> None:
        self.closed = True
        self.runner.shutdown()
        self.library.close()
        gc.unfreeze()   # what ``build_services`` froze is collected again


def _no_model():
    from app.engine.errors import EngineError

    raise EngineError("this work runs on the pool, which has no model")


def build_services(data_dir: str | Path | None = None,
                   engine_factory: Callable[[], Any] | None = None) -> Services:
    import sys

    # Hand the GIL to the UI thread sooner than the default 5 ms while workers run Python code:
    # the transcript's layout calls the delegate's Python sizeHint from C++ once per row, and
    # each call waits up to this long for a worker in a Python loop (undoing a 1,700-segment
    # replace during playback: largest heartbeat gap 52-128 ms at 2 ms, 38-62 ms at 0.5 ms).
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
    data = Path(data_dir) if data_dir is not None else paths.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(data / "settings.json")
    import shutil

    for tmp in data.glob("dictation-*"):  # a dictation's scratch folder left by a quit mid-take
        shutil.rmtree(tmp, ignore_errors=True)
    library = Library.open(data)
    notices = [library.notice] if library.notice else []
    interrupted = library.jobs.mark_interrupted()
    library.summaries.mark_unfinished()  # a summary a dead process was writing: 'failed', text kept
    if interrupted:
        notices.append(f"{len(interrupted)} job(s) were interrupted last time; "
                       "retry them from the Jobs panel")
    # The workers always read the current settings object (the dialog may replace it), through a
    # weak reference: Services -> worker -> this function -> Services would be a reference cycle,
    # and the cycle collector frees a cycle on whichever thread happens to run it, often a
    # worker: the services' QObjects (the workers, their relays) would be deleted off their thread.
    ref: Callable[[], Services | None] = lambda: None  # noqa: E731 - replaced by the weak reference below

    def current_settings() -> Settings:
        s = ref()
        return s.settings if s is not None else settings

    model = ModelService(data, current_settings, engine_factory)
    io = ModelService(data, current_settings, _no_model, name="minutely-io", workers=POOL_THREADS)
    services = Services(data, settings, library, model, io, Runner(model, io), notices)
    ref = weakref.ref(services)
    # What exists now (the modules, their classes and functions: most of the heap) is moved out
    # of the cyclic collector's way until ``close``: a full collection, which holds the GIL, then
    # walks only what came later. A worker allocating a 4,000-row session set one off in the
    # 3-hour test's replace step, and the UI thread waited 49-70 ms for it.
    gc.freeze()
    return services
