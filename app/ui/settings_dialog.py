"""Settings: where the data lives, the model and how it runs, recording, language.

``SettingsDialog(services, parent)`` edits ``services.settings`` in place and
saves it atomically with ``services.save_settings()`` when OK is pressed; a
change to how the model runs (threads, GPU layers, context, image tokens)
calls ``services.model.model_changed()`` so the next job loads it that way.

The data folder is shown read-only with an "Open folder" button: moving a
library and its media is a job of its own, and the folder can already be
chosen at start with MINUTELY_HOME. The audio devices are listed on the
runner's pool (PortAudio may take a moment, or be missing).
"""

from __future__ import annotations

import os
import re

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.paths import ENV_HOME

from .model_download import ModelDownloader
from .model_setup import ModelDialog, state_text
from .server_settings import SERVER_KEYS, ServerPage
from .widgets import LANGUAGES, FittingDialog, button, message_label
from .words_settings import WordsPage

# settings that change how the model is loaded: a change reloads it
ENGINE_KEYS = ("n_threads", "n_gpu_layers", "n_ctx", "image_tokens", "use_drafter", *SERVER_KEYS)
_LANGUAGE = re.compile(r"[^\W\d_](?:[^\W\d_]|[ ()'.-])*")  # a letter, then letters and " ()'.-"
MIC_DEFAULT, SYSTEM_AUTO, SYSTEM_OFF = "default", "auto", "off"


def validate(values: dict) -> list[str]:
    """Plain sentences for what cannot be saved; empty when all is well."""
    problems = []
    for key, what in (("language", "The meeting language"), ("translate_to", "The translation language")):
        v = values.get(key, "")
        if v and (len(v) > 40 or not _LANGUAGE.fullmatch(v)):
            problems.append(f"{what} “{v}” is not a language name: write it in letters, like “German”, "
                            "or leave it empty.")
    lang, target = values.get("language", ""), values.get("translate_to", "")
    if lang and target and lang.casefold() == target.casefold():
        problems.append(f"The translation language is the meeting language ({lang}): leave “Translate "
                        "to” empty, or choose another language.")
    if len(values.get("user_name", "")) > 60:
        problems.append("Your name is too long: 60 letters at most.")
    if values.get("capture_interval", 1.0) <= 0:
        problems.append("The time between screenshots must be more than zero seconds.")
    return problems


def _language_box(name: str, empty: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(True)
    box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    box.addItem("")
    box.addItems(LANGUAGES)
    edit = box.lineEdit()  # made by setEditable(True)
    assert edit is not None
    edit.setPlaceholderText(empty)
    box.setAccessibleName(name)
    return box


class SettingsDialog(FittingDialog):
    """Edit and save the settings; ``settings_saved(changed keys)`` after OK."""

    settings_saved = Signal(object)   # set of the setting names that changed
    model_ready = Signal()            # a model was downloaded or imported from the Model… button

    def __init__(self, services, parent: QWidget | None = None, *,
                 downloader: ModelDownloader | None = None, sd=None):
        super().__init__(parent)
        self.services = services
        self.downloader = downloader
        self._sd = sd
        self.model_dialog: ModelDialog | None = None
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        s = services.settings

        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        lay.addWidget(self.tabs)
        self.tabs.addTab(self._general_tab(), "&General")
        self.tabs.addTab(self._model_tab(), "&Model")
        self.server = ServerPage(services)
        self.tabs.addTab(self.server, "Model ser&ver")
        self.tabs.addTab(self._recording_tab(), "&Recording")
        self.words = WordsPage()
        self.tabs.addTab(self.words, "&Words and notes")

        self.message = message_label("Settings message")
        lay.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setAccessibleName("Save the settings")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Discard the changes")
        lay.addWidget(self.buttons)

        self.load_values(s)
        services.model.model_state.connect(self._model_state)
        self._list_devices()

    # -- pages ------------------------------------------------------------------------
    def _general_tab(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        row = QHBoxLayout()
        self.data_dir_edit = QLineEdit(str(self.services.data_dir))
        self.data_dir_edit.setReadOnly(True)
        self.data_dir_edit.setAccessibleName("Data folder")
        self.open_folder_button = button("&Open folder", "Open the data folder", self.open_data_folder)
        row.addWidget(self.data_dir_edit, 1)
        row.addWidget(self.open_folder_button)
        form.addRow("Data folder:", row)
        note = QLabel(f"The library, recordings and models are kept here. To keep them elsewhere, start "
                      f"Minutely with the environment variable {ENV_HOME} set to another folder.")
        note.setWordWrap(True)
        form.addRow("", note)
        self.language_box = _language_box("Meeting language", "Detect automatically")
        form.addRow("Meeting &language:", self.language_box)
        self.translate_box = _language_box("Translate to", "No translation")
        form.addRow("&Translate to:", self.translate_box)
        return w

    def _model_tab(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        row = QHBoxLayout()
        self.model_label = message_label("Model in use", selectable=False, hidden=False)
        self.model_button = button("Change &model…", "Download or import a model", self.open_model_dialog)
        row.addWidget(self.model_label, 1)
        row.addWidget(self.model_button)
        form.addRow("Model:", row)
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, max(64, os.cpu_count() or 1))
        self.threads_spin.setSpecialValueText("Automatic")
        self.threads_spin.setAccessibleName("CPU threads")
        self.threads_spin.setToolTip(f"This computer has {os.cpu_count() or 1} logical cores.")
        form.addRow("CPU &threads:", self.threads_spin)
        self.gpu_spin = QSpinBox()
        self.gpu_spin.setRange(-1, 999)
        self.gpu_spin.setSpecialValueText("All layers")
        self.gpu_spin.setAccessibleName("GPU layers")
        self.gpu_spin.setToolTip("Layers of the model on the graphics card; 0 runs everything on the CPU.")
        form.addRow("&GPU layers:", self.gpu_spin)
        gpu_note = QLabel("0 runs the model on the CPU only; “All layers” puts all of it on the graphics card.")
        gpu_note.setWordWrap(True)
        form.addRow("", gpu_note)
        self.ctx_spin = QSpinBox()
        self.ctx_spin.setRange(2048, 262144)
        self.ctx_spin.setSingleStep(1024)
        self.ctx_spin.setSuffix(" tokens")
        self.ctx_spin.setGroupSeparatorShown(True)
        self.ctx_spin.setAccessibleName("Context size")
        self.ctx_spin.setToolTip("How much the model can read at once; larger needs more memory. "
                                 "An hour of audio is 90,000 tokens.")
        form.addRow("&Context size:", self.ctx_spin)
        self.image_spin = QSpinBox()
        self.image_spin.setRange(70, 1120)
        self.image_spin.setSingleStep(10)
        self.image_spin.setSuffix(" tokens per image")
        self.image_spin.setAccessibleName("Image tokens")
        self.image_spin.setToolTip("Detail the model sees in each screenshot or video frame (70-1120).")
        form.addRow("&Image detail:", self.image_spin)
        self.drafter_check = QCheckBox("Faster answers with the model's &drafter")
        self.drafter_check.setAccessibleName("MTP drafter")
        self.drafter_check.setToolTip("Answers are decoded with the model's Multi-Token-Prediction "
                                      "drafter when it is downloaded: the model checks several "
                                      "proposed words at once; the answers stay the model's own.")
        form.addRow("", self.drafter_check)
        self.serve_check = QCheckBox("Serve the model to other apps on this &computer")
        self.serve_check.setAccessibleName("Serve the model to other apps")
        self.serve_check.setToolTip("An OpenAI-compatible endpoint on 127.0.0.1 (this computer only); other "
                                    "apps' requests wait while meeting work runs.")
        form.addRow("", self.serve_check)
        self.serve_port_spin = QSpinBox()
        self.serve_port_spin.setRange(1024, 65535)
        self.serve_port_spin.setAccessibleName("Port for other apps")
        form.addRow("&Port:", self.serve_port_spin)
        self.serve_check.toggled.connect(self.serve_port_spin.setEnabled)
        return w

    def _recording_tab(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        self.mic_box = QComboBox()
        self.mic_box.setAccessibleName("Microphone")
        form.addRow("&Microphone:", self.mic_box)
        self.system_box = QComboBox()
        self.system_box.setAccessibleName("System audio")
        form.addRow("&System audio:", self.system_box)
        self.user_name_edit = QLineEdit()
        self.user_name_edit.setAccessibleName("Your name")
        self.user_name_edit.setPlaceholderText("You")
        self.user_name_edit.setToolTip("With system audio recorded, what the microphone hears is yours: "
                                       "your segments carry this name")
        form.addRow("Your &name:", self.user_name_edit)
        self.devices_note = QLabel("Looking for audio devices…")
        self.devices_note.setWordWrap(True)
        self.devices_note.setAccessibleName("Audio devices status")
        form.addRow("", self.devices_note)
        self.screen_check = QCheckBox("Take &screenshots while recording")
        self.screen_check.setAccessibleName("Screen capture")
        form.addRow("", self.screen_check)
        self.interval_spin = QDoubleSpinBox()
        self.interval_spin.setRange(1.0, 3600.0)
        self.interval_spin.setDecimals(0)
        self.interval_spin.setSuffix(" s")
        self.interval_spin.setAccessibleName("Seconds between screenshots")
        form.addRow("Screenshot &every:", self.interval_spin)
        self.screen_check.toggled.connect(self.interval_spin.setEnabled)
        self.detect_check = QCheckBox("&Offer to record when a meeting app uses the microphone")
        self.detect_check.setAccessibleName("Meeting detection")
        form.addRow("", self.detect_check)
        self.auto_apps_edit = QLineEdit()
        self.auto_apps_edit.setPlaceholderText("e.g. Zoom, Teams")
        self.auto_apps_edit.setAccessibleName("Apps recorded without asking")
        form.addRow("Record &without asking:", self.auto_apps_edit)
        self.silence_spin = QDoubleSpinBox()
        self.silence_spin.setRange(0.0, 240.0)
        self.silence_spin.setDecimals(1)
        self.silence_spin.setSuffix(" min")
        self.silence_spin.setSpecialValueText("never")
        self.silence_spin.setAccessibleName("Minutes of silence before a detected meeting stops")
        form.addRow("Stop after s&ilence:", self.silence_spin)
        return w

    # -- values -------------------------------------------------------------------------
    def load_values(self, s) -> None:
        self.language_box.setEditText(s.language)
        self.translate_box.setEditText(s.translate_to)
        self.threads_spin.setValue(s.n_threads)
        self.gpu_spin.setValue(s.n_gpu_layers)
        self.ctx_spin.setValue(s.n_ctx)
        self.image_spin.setValue(s.image_tokens)
        self.drafter_check.setChecked(s.use_drafter)
        self.serve_check.setChecked(s.serve_model)
        self.serve_port_spin.setValue(s.serve_port)
        self.serve_port_spin.setEnabled(s.serve_model)
        self.screen_check.setChecked(s.screen_capture)
        self.user_name_edit.setText(s.user_name)
        self.interval_spin.setValue(s.capture_interval)
        self.interval_spin.setEnabled(s.screen_capture)
        self.detect_check.setChecked(s.detect_meetings)
        self.auto_apps_edit.setText(", ".join(s.auto_record_apps))
        self.silence_spin.setValue(s.auto_stop_silence_minutes)
        self.words.load(s)
        self.server.load(s)
        self._fill_devices([])
        self._refresh_model()

    def values(self) -> dict:
        """What the dialog shows, as settings fields (the model pair is the Model dialog's)."""
        return {"language": " ".join(self.language_box.currentText().split()),
                "translate_to": " ".join(self.translate_box.currentText().split()),
                "n_threads": self.threads_spin.value(), "n_gpu_layers": self.gpu_spin.value(),
                "n_ctx": self.ctx_spin.value(), "image_tokens": self.image_spin.value(),
                "use_drafter": self.drafter_check.isChecked(),
                "serve_model": self.serve_check.isChecked(), "serve_port": self.serve_port_spin.value(),
                "mic_device": self.mic_box.currentData() or MIC_DEFAULT,
                "system_device": self.system_box.currentData() or SYSTEM_AUTO,
                "screen_capture": self.screen_check.isChecked(),
                "user_name": " ".join(self.user_name_edit.text().split()) or "You",
                "capture_interval": float(self.interval_spin.value()),
                "detect_meetings": self.detect_check.isChecked(),
                "auto_record_apps": [a.strip() for a in self.auto_apps_edit.text().split(",") if a.strip()],
                "auto_stop_silence_minutes": float(self.silence_spin.value()),
                **self.words.values(), **self.server.values()}

    def accept(self) -> None:
        values = self.values()
        problems = validate(values) + self.words.problems() + self.server.problems()
        if problems:
            self._say(" ".join(problems))
            return
        s = self.services.settings  # current: a model chosen meanwhile is kept
        old = {k: getattr(s, k) for k in values}
        changed = {k for k, v in values.items() if old[k] != v}
        for k, v in values.items():
            setattr(s, k, v)
        try:
            self.services.save_settings()
        except OSError as e:
            for k, v in old.items():
                setattr(s, k, v)
            self._say(f"The settings could not be saved ({e.strerror or e}); nothing was changed.")
            return
        if changed & set(ENGINE_KEYS):
            self.services.model.model_changed()
        self.settings_saved.emit(changed)
        super().accept()

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- data folder ----------------------------------------------------------------------
    def open_data_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.services.data_dir)))

    # -- model ----------------------------------------------------------------------------
    def _refresh_model(self) -> None:
        s = self.services.settings
        name = s.model_name or (os.path.basename(s.model_path) if s.model_path else "")
        if s.model_server:  # Settings ▸ Model server: the model answering is the server's
            name = f"{s.model_server_model or 'the model'} on {s.model_server}"
        state = state_text(self.services, self.services.model.state)
        self.model_label.setText(f"{name or 'none yet'} — {state}" if name else state)

    def _model_state(self, _state: str) -> None:
        self._refresh_model()

    def open_model_dialog(self) -> ModelDialog:
        if self.model_dialog is None:
            self.model_dialog = ModelDialog(self.services, self, downloader=self.downloader)
            self.model_dialog.model_ready.connect(self._model_ready)
        self.model_dialog.open()
        return self.model_dialog

    def _model_ready(self) -> None:
        self._refresh_model()
        self.model_ready.emit()

    # -- audio devices ----------------------------------------------------------------------
    def _list_devices(self) -> None:
        from app.capture.devices import list_inputs

        sd = self._sd
        self._devices_job = self.services.runner.run(
            "Listing audio devices", lambda ctx: list_inputs(sd), kind="devices",
            on_done=self._devices_listed, on_failed=self._devices_failed)

    def _devices_listed(self, devices) -> None:
        names = [d.name for d in devices]
        self._fill_devices(names)
        self.devices_note.setText(f"{len(names)} audio input(s) found." if names else
                                  "No audio inputs found: plug in a microphone, then open Settings again.")

    def _devices_failed(self, message: str) -> None:
        self.devices_note.setText(f"The audio devices could not be listed ({message}); the system's "
                                  "defaults are used.")

    def _fill_devices(self, names: list[str]) -> None:
        s = self.services.settings
        mic = self.mic_box.currentData() if self.mic_box.count() else s.mic_device
        system = self.system_box.currentData() if self.system_box.count() else s.system_device
        self.mic_box.clear()
        self.mic_box.addItem("System default", MIC_DEFAULT)
        self.system_box.clear()
        self.system_box.addItem("Automatic: what this computer plays", SYSTEM_AUTO)
        self.system_box.addItem("Off: record the microphone only", SYSTEM_OFF)
        for n in names:
            self.mic_box.addItem(n, n)
            self.system_box.addItem(n, n)
        for box, want in ((self.mic_box, mic), (self.system_box, system)):
            i = box.findData(want)
            if i < 0:  # chosen before, not plugged in now: kept, not silently replaced
                box.addItem(f"{want} (not connected)", want)
                i = box.count() - 1
            box.setCurrentIndex(i)

    def done(self, result: int) -> None:  # noqa: D401 - Qt API
        if self.model_dialog is not None and self.model_dialog.isVisible():
            self.model_dialog.reject()
        super().done(result)
