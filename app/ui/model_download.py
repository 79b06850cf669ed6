"""Background work for the model manager: the download and the import, off the UI thread.

``ModelDownloader`` drives ``app.engine.download.download`` as a task on the
runner's pool (not the model worker: a download needs no model) and reports
through Qt signals. Pause sets the cancel event and keeps the partial file; resume starts
the download again, which continues from it with a Range request. Cancel stops
the transfer and deletes what it fetched. The import of a local pair
(``app.engine.model_import.import_pair``) runs on the pool too. ``apply_model``
writes the choice to the settings and tells the model worker.

The lead keeps ONE ``ModelDownloader`` for the app and hands it to every
``ModelSetup``/``ModelDialog``, so a download keeps going while the dialog is
closed and both views show the same progress.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.engine.catalogue import CatalogueEntry, get_entry, local_paths
from app.engine.errors import ModelError
from app.engine.model_import import choose_pair
from app.fmt import size_text
from app.fsutil import free_bytes  # one probe of free space, so tests can stand in a full disk

from .tasks import CANCELLED, Task, TaskContext

log = logging.getLogger("minutely.ui.models")

ProgressFn = Callable[[int, int], None]

# downloader states
IDLE, DOWNLOADING, PAUSING, PAUSED, CANCELLING, DONE, FAILED = (
    "idle", "downloading", "pausing", "paused", "cancelling", "done", "failed")
BUSY = (DOWNLOADING, PAUSING, CANCELLING)


def models_root(services) -> Path:
    return Path(services.data_dir) / "models"


def apply_model(services, model: Path, mmproj: Path, name: str) -> None:
    """Use this pair from now on: settings written atomically, the model worker told."""
    choose_pair(services.settings, model, mmproj, name, save=services.save_settings)
    services.model.model_changed()


class Rate:
    """Bytes per second over the last few seconds (so a resume's head start is not counted)."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window, self.clock = window, clock
        self.samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self.samples.clear()

    def add(self, done: int) -> None:
        now = self.clock()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()

    def bytes_per_second(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return max(0.0, (d1 - d0) / (t1 - t0)) if t1 > t0 else 0.0




class _Stopped(Exception):
    """The cancel event stopped a copy."""


# -- download ------------------------------------------------------------------

class ModelDownloader(QObject):
    """The catalogue's default pair (or ``entry``), downloaded with pause, resume and cancel."""

    state_changed = Signal(str)              # IDLE, DOWNLOADING, PAUSING, PAUSED, CANCELLING, DONE, FAILED
    progress = Signal(object, object, float)  # done bytes, total bytes, bytes per second (0: not known yet)
    finished = Signal(str, str)              # the model and mmproj now in use
    failed = Signal(str)                     # one line for the user

    def __init__(self, services, entry: CatalogueEntry | None = None, *, endpoint: str | None = None,
                 token: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.services = services
        self.endpoint, self.token = endpoint, token
        self._entry = entry
        self.state = IDLE
        self.message = ""
        self.done_bytes = 0
        self.total_bytes = 0
        self.rate = Rate()
        self._job: Task | None = None
        self._after_stop = PAUSED

    # -- what is known before starting ----------------------------------------------
    @property
    def entry(self) -> CatalogueEntry:
        if self._entry is None:
            self._entry = get_entry(None, models_root(self.services))
        return self._entry

    def paths(self) -> tuple[Path, Path]:
        return local_paths(self.entry, models_root(self.services))

    def staging(self) -> Path:
        from app.engine.catalogue import STAGING_DIR

        return self.paths()[0].parent / STAGING_DIR

    def bytes_here(self) -> int:
        """Bytes of this entry already on disk: partial downloads and finished files (stat only)."""
        from app.engine.catalogue import drafter_path

        drafter = drafter_path(self.entry, models_root(self.services))
        files = [*self.paths(), *([drafter] if drafter is not None else [])]
        n = sum(p.stat().st_size for p in files if p.is_file())
        staging = self.staging()
        if staging.is_dir():
            n += sum(p.stat().st_size for p in staging.glob("*.incomplete") if p.is_file())
        return n

    def space_problem(self) -> str | None:
        """A plain sentence when the rest of the download cannot fit on the disk, else None."""
        need = max(0, self.entry.total_size - self.bytes_here())
        free = free_bytes(models_root(self.services))
        if need <= free:
            return None
        return (f"Not enough disk space: the model needs {size_text(need)} more, but only "
                f"{size_text(free)} is free on the disk holding {models_root(self.services)}. "
                "Free some space, then try again.")

    def busy(self) -> bool:
        return self.state in BUSY

    # -- actions --------------------------------------------------------------------------
    def start(self) -> bool:
        """Start or resume. False (with ``failed``) when it cannot start, e.g. the disk is too full."""
        if self.busy():
            return False
        try:
            problem = self.space_problem()
        except (ModelError, OSError) as e:
            problem = f"Cannot start the download: {e}"
        if problem:
            self._fail(problem)
            return False
        entry, root, endpoint, token = self.entry, models_root(self.services), self.endpoint, self.token

        def work(ctx: TaskContext):
            from app.engine.download import download

            return download(entry, root, progress=ctx.count, cancel=ctx.cancel_event, endpoint=endpoint,
                            token=token)

        self.message = ""
        self.rate.reset()
        self._after_stop = PAUSED
        job = Task(f"Downloading {entry.name}", work, kind="download", needs_model=False)
        job.amount.connect(self._on_progress)
        job.done.connect(self._on_done)
        job.failed.connect(self._on_failed)
        job.state_changed.connect(self._download_ended)
        self._job = job
        self._set_state(DOWNLOADING)
        self.services.runner.submit(job)
        return True

    def pause(self) -> None:
        """Stop the transfer, keep the partial file: ``start()`` resumes from it."""
        if self.state == DOWNLOADING and self._job is not None:
            self._after_stop = PAUSED
            self._set_state(PAUSING)
            self._job.cancel()

    def cancel(self) -> None:
        """Stop and delete what this download fetched (nothing that is in use)."""
        if self.state in (DOWNLOADING, PAUSING) and self._job is not None:
            self._after_stop = IDLE
            self._set_state(CANCELLING)
            self._job.cancel()
        elif self.state in (PAUSED, FAILED):
            self._set_state(CANCELLING)
            self._discard()

    def shutdown(self, timeout: float = 5.0) -> None:
        """At app exit: stop the transfer (the partial file stays for next time)."""
        if self._job is not None:
            if self.state == DOWNLOADING:
                self._after_stop = PAUSED
            self._job.cancel()
            self._job.wait(timeout)

    # -- thread results (main thread) -------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _fail(self, message: str) -> None:
        self.message = message
        self._set_state(FAILED)
        self.failed.emit(message)

    def _on_progress(self, done: int, total: int) -> None:
        self.done_bytes, self.total_bytes = done, total
        self.rate.add(done)
        self.progress.emit(done, total, self.rate.bytes_per_second())

    def _on_done(self, pair) -> None:
        model, mmproj = pair
        self.done_bytes = self.total_bytes = max(self.total_bytes, self.done_bytes)
        try:
            apply_model(self.services, Path(model), Path(mmproj), self.entry.name)
        except ModelError as e:
            self._fail(f"Downloaded, but {e}")
            return
        self.message = ""
        self._set_state(DONE)
        self.finished.emit(str(model), str(mmproj))

    def _on_failed(self, message: str) -> None:
        self._fail(message[:1].upper() + message[1:])

    def _download_ended(self, state: str) -> None:
        if state == CANCELLED:
            self._on_stopped()

    def _discard(self) -> None:
        """Throw the partial data away, off this thread."""
        staging, paths = self.staging(), self.paths()
        s = self.services.settings
        in_use = [p for p in (s.model_path, s.mmproj_path) if p]
        job = Task("Deleting a partial download", lambda ctx: discard_partial(staging, paths, in_use),
                   kind="download", needs_model=False)
        job.done.connect(self._discarded)
        job.failed.connect(self._on_failed)
        self._job = job
        self.services.runner.submit(job)

    def _on_stopped(self) -> None:
        if self._after_stop == IDLE:  # cancelled: throw the partial data away
            self._discard()
            return
        self.message = (f"Paused at {size_text(self.done_bytes)} of {size_text(self.total_bytes)}; "
                        "resume continues from there (also after a restart).")
        self._set_state(PAUSED)

    def _discarded(self, _result=None) -> None:
        self.done_bytes = self.total_bytes = 0
        self.message = "Download cancelled; the partial files were deleted."
        self._set_state(IDLE)



def discard_partial(staging: Path, paths: tuple[Path, Path], in_use: list[str]) -> None:
    """Worker thread: delete an entry's staging folder and its finished files that are not in use
    (given as values: the worker reads nothing of the window's objects)."""
    keep = {Path(p).resolve() for p in in_use}
    shutil.rmtree(staging, ignore_errors=True)
    for p in paths:
        if p.is_file() and p.resolve() not in keep:
            p.unlink(missing_ok=True)
    try:
        paths[0].parent.rmdir()  # only if it is now empty
    except OSError:
        pass

