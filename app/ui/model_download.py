"""Background work for the model manager: the download and the import, off the UI thread.

``ModelDownloader`` drives ``app.engine.download.download`` as a task on the
runner's pool (not the model worker: a download needs no model) and reports
through Qt signals. Pause sets the cancel event and keeps the partial file; resume starts
the download again, which continues from it with a Range request. Cancel stops
the transfer and deletes what it fetched. ``import_pair`` checks a local GGUF
pair from its headers and copies it into the data folder (or references it in
place); it also runs on the pool. ``apply_model`` writes the choice to the
settings and tells the model worker.

The lead keeps ONE ``ModelDownloader`` for the app and hands it to every
``ModelSetup``/``ModelDialog``, so a download keeps going while the dialog is
closed and both views show the same progress.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from app.engine.catalogue import CatalogueEntry, get_entry, local_paths
from app.engine.errors import ModelError

from .tasks import CANCELLED, Task, TaskContext

log = logging.getLogger("minutely.ui.models")

ProgressFn = Callable[[int, int], None]

# downloader states
IDLE, DOWNLOADING, PAUSING, PAUSED, CANCELLING, DONE, FAILED = (
    "idle", "downloading", "pausing", "paused", "cancelling", "done", "failed")
BUSY = (DOWNLOADING, PAUSING, CANCELLING)
_COPY_BLOCK = 8 << 20


def size_text(n: float) -> str:
    """A size for people: 812 KB, 1.5 MB, 7.3 GB."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{max(0, n) / 1e3:.0f} KB"


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds ``path`` (or its nearest existing parent).

    The one probe the model manager uses, so tests can stand in a full disk."""
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free


def models_root(services) -> Path:
    return Path(services.data_dir) / "models"


def apply_model(services, model: Path, mmproj: Path, name: str) -> None:
    """Use this pair from now on: settings written atomically, the model worker told."""
    s = services.settings
    old = (s.model_path, s.mmproj_path, s.model_name)
    s.model_path, s.mmproj_path, s.model_name = str(model), str(mmproj), name
    try:
        services.save_settings()
    except OSError as e:
        s.model_path, s.mmproj_path, s.model_name = old
        raise ModelError(f"the settings could not be saved ({e.strerror or e})") from None
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


def progress_text(done: int, total: int, rate: float) -> str:
    """'1.2 GB of 8.3 GB · 12.3 MB/s · about 10 min left'."""
    parts = [f"{size_text(done)} of {size_text(total)}"]
    if rate > 0:
        parts.append(f"{size_text(rate)}/s")
        left = (total - done) / rate
        if left >= 90:
            parts.append(f"about {left / 60:.0f} min left")
        elif done < total:
            parts.append(f"about {max(1, round(left))} s left")
    return " · ".join(parts)


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
        n = sum(p.stat().st_size for p in self.paths() if p.is_file())
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


# -- import ---------------------------------------------------------------------

def import_pair(model: Path, mmproj: Path, copy_to: Path | None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> tuple[Path, Path, str]:
    """Check a local pair from its headers; copy it under ``copy_to/imported/<name>/`` or keep it
    in place. Returns (model, mmproj, name). ModelError with a plain reason when it is unusable."""
    from app.engine.gguf_check import check_pair
    from app.fsutil import _atomic

    model, mmproj = Path(model).expanduser(), Path(mmproj).expanduser()
    for p, what in ((model, "model"), (mmproj, "projector (mmproj)")):
        if not str(p).strip() or str(p) == ".":
            raise ModelError(f"choose the {what} file first")
        if not p.is_file():
            raise ModelError(f"the {what} file was not found: {p}")
    if model.resolve() == mmproj.resolve():
        raise ModelError("the model and the projector must be two different files")
    info = check_pair(model, mmproj)
    if not info.has_chat_template:
        raise ModelError(f"{model.name} carries no chat template, so Minutely cannot talk to it")
    name = model.stem
    if copy_to is None:
        return model.resolve(), mmproj.resolve(), name
    dest = Path(copy_to) / "imported" / name
    targets = [(src, dest / src.name) for src in (model, mmproj)]
    targets = [(s, d) for s, d in targets if not (d.exists() and d.resolve() == s.resolve())]
    need = sum(s.stat().st_size for s, _ in targets)
    free = free_bytes(Path(copy_to))
    if need > free:
        raise ModelError(f"not enough disk space to copy: need {size_text(need)}, {size_text(free)} free. "
                         "Free some space, or use the files where they are")
    done = 0

    def fill_from(src: Path):
        def fill(tmp: str) -> None:
            nonlocal done
            with open(src, "rb") as fi, open(tmp, "wb") as fo:
                while block := fi.read(_COPY_BLOCK):
                    fo.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, need)
                    if cancel is not None and cancel.is_set():
                        raise _Stopped()
        return fill

    if progress is not None:
        progress(0, need)
    for src, dst in targets:
        _atomic(dst, fill_from(src))
    out_model, out_mmproj = dest / model.name, dest / mmproj.name
    check_pair(out_model, out_mmproj)  # the copies are whole
    return out_model, out_mmproj, name
