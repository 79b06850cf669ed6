"""First run and model manager: get the model by downloading it or importing GGUF files.

``ModelSetup(services)`` is the widget (the empty state of the main window);
``ModelDialog(services, parent)`` wraps it for Tools > Model…. Both say which
model is configured and whether it is loaded, and offer:

- download of the catalogue's default pair: its size, a free-space check
  before anything is fetched, progress with bytes, rate and time left,
  pause / resume (the partial file is kept, also across restarts) and cancel;
- import of a model + projector (mmproj) GGUF pair already on disk, checked
  from their headers before anything is accepted, then copied into the data
  folder or used where they are.

All file work runs on the runner's pool (``model_download``); on success the
settings are written, the model worker is told (``model_changed()``) and
``model_ready`` is emitted.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.engine.errors import ModelError
from app.engine.model_import import import_pair
from app.fmt import progress_text, size_text
from app.fsutil import free_bytes

from .model_download import (
    BUSY,
    CANCELLING,
    DONE,
    DOWNLOADING,
    FAILED,
    IDLE,
    PAUSED,
    PAUSING,
    ModelDownloader,
    apply_model,
    models_root,
)
from .tasks import CANCELLED, Task
from .widgets import FittingDialog, button, message_label, progress_bar

GGUF_FILTER = "GGUF model files (*.gguf);;All files (*)"


def state_text(services, state: str) -> str:
    """What the model worker's state means to a person."""
    if state == "no model" and services.model.has_model():
        return "Configured; it loads when it is first needed"
    if state.startswith("error:"):
        return f"Could not load it: {state[6:].strip()}"
    return {"no model": "No model yet: recording and importing work, transcription waits",
            "loading": "Loading…", "ready": "Loaded and ready"}.get(state, state)


def _show(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))


class ModelSetup(QWidget):
    """Download or import the model; shows the model in use and its state."""

    model_ready = Signal()

    def __init__(self, services, parent: QWidget | None = None, *,
                 downloader: ModelDownloader | None = None):
        super().__init__(parent)
        self.services = services
        self.setAccessibleName("Model setup")
        self.downloader = downloader or ModelDownloader(services, parent=self)
        self._owns_downloader = downloader is None
        self._import_job: Task | None = None

        lay = QVBoxLayout(self)
        heading = QLabel("<h3>The model</h3>")
        heading.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(heading)
        intro = QLabel("Minutely runs one local model (Gemma 4 with its audio and vision projector) that "
                       "transcribes, summarizes and answers questions. It stays on this computer.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        current = QFormLayout()
        self.current_label = message_label("Model in use", hidden=False)
        self.state_label = message_label("Model state", selectable=False, hidden=False)
        current.addRow("In use:", self.current_label)
        current.addRow("State:", self.state_label)
        lay.addLayout(current)

        lay.addWidget(self._download_box())
        lay.addWidget(self._import_box())
        lay.addStretch(1)

        services.model.model_state.connect(self._model_state)
        d = self.downloader
        d.state_changed.connect(self._download_state)
        d.progress.connect(self._download_progress)
        d.finished.connect(self._downloaded)
        self._refresh_current()
        self._download_state(d.state)
        if d.total_bytes:
            self._download_progress(d.done_bytes, d.total_bytes, d.rate.bytes_per_second())

    # -- layout -----------------------------------------------------------------------
    def _download_box(self) -> QGroupBox:
        box = QGroupBox("Download the model (recommended)")
        box.setAccessibleName("Download the model")
        v = QVBoxLayout(box)
        self.entry_label = message_label("Model to download", selectable=False, hidden=False)
        v.addWidget(self.entry_label)
        buttons = QHBoxLayout()
        self.download_button = button("&Download", "Download the model", self.start_download)
        self.pause_button = button("&Pause", "Pause the download", self.downloader.pause)
        self.cancel_button = button("&Cancel download", "Cancel the download", self.downloader.cancel)
        for b in (self.download_button, self.pause_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        v.addLayout(buttons)
        self.download_bar = progress_bar("Download progress")
        v.addWidget(self.download_bar)
        self.download_status = message_label("Download status", selectable=False, hidden=False)
        v.addWidget(self.download_status)
        self.download_message = message_label("Download message")
        v.addWidget(self.download_message)
        return box

    def _import_box(self) -> QGroupBox:
        box = QGroupBox("Or use GGUF files you already have")
        box.setAccessibleName("Import model files")
        v = QVBoxLayout(box)
        form = QFormLayout()
        self.model_edit, model_row = self._file_row("Model file", "the language model (.gguf)")
        self.mmproj_edit, mmproj_row = self._file_row("Projector file", "its mmproj (.gguf)")
        form.addRow("&Model file:", model_row)
        form.addRow("P&rojector (mmproj):", mmproj_row)
        v.addLayout(form)
        self.copy_radio = QRadioButton("C&opy them into Minutely's data folder (safe if the originals move)")
        self.copy_radio.setAccessibleName("Copy the files into the data folder")
        self.inplace_radio = QRadioButton("Use them &where they are (no extra disk space)")
        self.inplace_radio.setAccessibleName("Use the files where they are")
        group = QButtonGroup(self)
        group.addButton(self.copy_radio)
        group.addButton(self.inplace_radio)
        self.copy_radio.setChecked(True)
        v.addWidget(self.copy_radio)
        v.addWidget(self.inplace_radio)
        row = QHBoxLayout()
        self.import_button = button("&Import", "Import the model files", self.start_import)
        self.import_cancel = button("Stop copying", "Stop copying the model files", self.cancel_import)
        self.import_cancel.hide()
        row.addWidget(self.import_button)
        row.addWidget(self.import_cancel)
        row.addStretch(1)
        v.addLayout(row)
        self.import_bar = progress_bar("Import progress")
        v.addWidget(self.import_bar)
        self.import_message = message_label("Import message")
        v.addWidget(self.import_message)
        return box

    def _file_row(self, name: str, placeholder: str) -> tuple[QLineEdit, QWidget]:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setAccessibleName(name)
        edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.setAccessibleName(f"Choose the {name.lower()}")
        browse.clicked.connect(lambda: self._browse(edit, name))
        h.addWidget(edit, 1)
        h.addWidget(browse)
        return edit, w

    def _browse(self, edit: QLineEdit, title: str) -> None:
        start = edit.text() or (self.model_edit.text() and str(Path(self.model_edit.text()).parent)) \
            or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, f"Choose the {title.lower()}", start, GGUF_FILTER)
        if path:
            edit.setText(path)

    # -- current model ------------------------------------------------------------------
    def _refresh_current(self) -> None:
        s = self.services.settings
        if s.model_path:
            name = s.model_name or Path(s.model_path).stem
            self.current_label.setText(f"{name}\n{s.model_path}" + (f"\n{s.mmproj_path}" if s.mmproj_path else ""))
        elif self.services.model.has_model():
            self.current_label.setText("the downloaded default model")
        else:
            self.current_label.setText("none yet")
        self._model_state(self.services.model.state)

    def _model_state(self, state: str) -> None:
        self.state_label.setText(state_text(self.services, state))

    # -- download -------------------------------------------------------------------------
    def start_download(self) -> None:
        _show(self.download_message, "")
        self.downloader.start()

    def _describe_entry(self) -> None:
        d = self.downloader
        try:
            e = d.entry
            here = d.bytes_here()
            free = free_bytes(models_root(self.services))
        except (ModelError, OSError) as err:
            self.entry_label.setText(f"No model to download: {err}")
            self.download_button.setEnabled(False)
            return
        about = "about " if e.approx else ""
        text = (f"<b>{e.title}</b><br>{about}{size_text(e.total_size)} to download, once; "
                f"needs about {e.ram_gb:g} GB of memory. {size_text(free)} free on this disk.")
        if here and d.state in (IDLE, FAILED, PAUSED):
            text += f"<br>{size_text(here)} already downloaded: the download continues from there."
        self.entry_label.setText(text)

    def _download_state(self, state: str) -> None:
        d = self.downloader
        busy = state in BUSY
        here = 0
        if not busy:
            try:
                here = d.bytes_here()
            except (ModelError, OSError):
                here = 0
        self.download_button.setVisible(not busy)
        self.download_button.setText("&Resume" if state == PAUSED or (here and state in (IDLE, FAILED))
                                     else "&Try again" if state == FAILED else "&Download")
        self.download_button.setAccessibleName("Resume the download" if "Resume" in self.download_button.text()
                                               else "Download the model")
        self.pause_button.setVisible(state in (DOWNLOADING, PAUSING))
        self.pause_button.setEnabled(state == DOWNLOADING)
        self.cancel_button.setVisible(state in (DOWNLOADING, PAUSING, PAUSED) or (state == FAILED and here > 0))
        self.cancel_button.setEnabled(state != CANCELLING)
        self.download_bar.setVisible(state in (DOWNLOADING, PAUSING, PAUSED, CANCELLING))
        status = {DOWNLOADING: "Downloading…" if not d.total_bytes else self.download_status.text(),
                  PAUSING: "Pausing…", CANCELLING: "Cancelling…", PAUSED: d.message,
                  DONE: "Downloaded and in use.", IDLE: d.message, FAILED: ""}[state]
        self.download_status.setText(status)
        _show(self.download_message, d.message if state == FAILED else "")
        self._describe_entry()
        if state == DONE:
            self._refresh_current()

    def _download_progress(self, done: int, total: int, rate: float) -> None:
        self.download_bar.setValue(int(1000 * done / total) if total else 0)
        self.download_bar.setFormat(f"{100 * done / total:.0f}%" if total else "")
        if self.downloader.state == DOWNLOADING:
            self.download_status.setText(progress_text(done, total, rate))

    def _downloaded(self, _model: str, _mmproj: str) -> None:
        self._refresh_current()
        self.model_ready.emit()

    # -- import ---------------------------------------------------------------------------
    def start_import(self) -> None:
        if self._import_job is not None and not self._import_job.finished:
            return
        _show(self.import_message, "")
        model, mmproj = self.model_edit.text().strip(), self.mmproj_edit.text().strip()
        if not model or not mmproj:
            _show(self.import_message, "Choose both files first: the model and its projector (mmproj).")
            return
        copy_to = models_root(self.services) if self.copy_radio.isChecked() else None
        job = Task(f"Importing {Path(model).name}",
                   lambda ctx: import_pair(Path(model), Path(mmproj), copy_to, ctx.count, ctx.cancel_event),
                   kind="model-import", needs_model=False)
        job.amount.connect(self._import_progress)
        job.done.connect(self._imported)
        job.failed.connect(self._import_failed)
        job.state_changed.connect(self._import_state)
        self._import_job = job
        self.import_button.setEnabled(False)
        self.import_bar.setRange(0, 0)  # busy until the copy reports bytes
        self.import_bar.show()
        self.import_cancel.setVisible(copy_to is not None)
        self.services.runner.submit(job)

    def cancel_import(self) -> None:
        if self._import_job is not None:
            self._import_job.cancel()

    def _import_progress(self, done: int, total: int) -> None:
        self.import_bar.setRange(0, 1000)
        self.import_bar.setValue(int(1000 * done / total) if total else 1000)
        self.import_bar.setFormat(f"copying: {size_text(done)} of {size_text(total)}")

    def _import_finished(self) -> None:
        self.import_button.setEnabled(True)
        self.import_bar.hide()
        self.import_cancel.hide()

    def _imported(self, result) -> None:
        self._import_finished()
        model, mmproj, name = result
        try:
            apply_model(self.services, model, mmproj, name)
        except ModelError as e:
            _show(self.import_message, f"The files are fine, but {e}.")
            return
        _show(self.import_message, f"Imported “{name}”; it is now the model in use.")
        self._refresh_current()
        self.model_ready.emit()

    def _import_failed(self, message: str) -> None:
        self._import_finished()
        _show(self.import_message, f"These files cannot be used: {message}")

    def _import_state(self, state: str) -> None:
        if state == CANCELLED:
            self._import_stopped()

    def _import_stopped(self) -> None:
        self._import_finished()
        _show(self.import_message, "Import stopped; nothing was changed.")

    # -- lifetime -------------------------------------------------------------------------
    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop this widget's own threads (a shared downloader is its owner's to stop)."""
        if self._import_job is not None:
            self._import_job.cancel()
            self._import_job.wait(timeout)
        if self._owns_downloader:
            self.downloader.shutdown(timeout)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)


class ModelDialog(FittingDialog):
    """Tools > Model…: the ModelSetup in a dialog that closes itself once a model is ready.

    Pass the app's shared ``downloader`` so a download keeps going while the dialog is closed."""

    model_ready = Signal()

    def __init__(self, services, parent: QWidget | None = None, *,
                 downloader: ModelDownloader | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model")
        self.setAccessibleName("Model")
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # grows with its content, never clips
        self.setup = ModelSetup(services, self, downloader=downloader)
        lay.addWidget(self.setup)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName("Close")
        lay.addWidget(buttons)
        self.setup.model_ready.connect(self._ready)

    def _ready(self) -> None:
        self.model_ready.emit()
        self.accept()

    def done(self, result: int) -> None:  # noqa: D401 - Qt API; stop threads the dialog owns
        self.setup.shutdown(timeout=0 if not self.setup._owns_downloader else 5.0)
        super().done(result)
