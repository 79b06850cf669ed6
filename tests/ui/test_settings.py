"""The Settings dialog as a person uses it: values saved atomically and kept across restarts,
model reloads only when how it runs changed, plain validation messages, audio devices listed
from the real PortAudio (private PulseAudio rig), and the Model… button. Offscreen Qt, no sleeps."""

from __future__ import annotations

import json
import os

import pytest
from PySide6.QtGui import QDesktopServices

from app.settings import Settings
from app.ui.bootstrap import build_services
from app.ui.settings_dialog import SettingsDialog

WAIT = 60_000


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def services(home):
    s = build_services(home)
    yield s
    s.close()


@pytest.fixture
def changed(services, monkeypatch):
    calls = []
    real = services.model.model_changed
    monkeypatch.setattr(services.model, "model_changed", lambda: (calls.append(1), real()))
    return calls


class NoPortAudio:
    """sounddevice as it behaves when the PortAudio library is missing."""

    def query_hostapis(self):
        raise OSError("PortAudio library not found")

    query_devices = query_hostapis


def dialog(qtbot, services, **kw) -> SettingsDialog:
    d = SettingsDialog(services, **kw)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(lambda: d.devices_note.text() != "Looking for audio devices…", timeout=WAIT)
    return d


def saved(home) -> dict:
    return json.loads((home / "settings.json").read_text())


def test_new_settings_keys_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    assert (Settings().mic_device, Settings().system_device, Settings().screen_capture) == ("default", "auto", False)
    Settings(mic_device="virtmic", system_device="off", screen_capture=True).save(path)
    s = Settings.load(path)
    assert (s.mic_device, s.system_device, s.screen_capture) == ("virtmic", "off", True)
    path.write_text(json.dumps({"screen_capture": 1, "mic_device": 5}))  # wrong types: defaults
    s = Settings.load(path)
    assert (s.mic_device, s.screen_capture) == ("default", False)


def test_settings_persist_across_restarts(qtbot, home, services, changed):
    d = dialog(qtbot, services, sd=NoPortAudio())
    assert d.data_dir_edit.text() == str(home) and d.data_dir_edit.isReadOnly()
    d.threads_spin.setValue(2)
    d.gpu_spin.setValue(-1)
    assert d.gpu_spin.text() == "All layers"
    d.ctx_spin.setValue(8192)
    d.image_spin.setValue(560)
    assert d.drafter_check.isChecked()
    d.drafter_check.setChecked(False)
    d.language_box.setEditText("German")
    d.translate_box.setEditText("English")
    d.screen_check.setChecked(True)
    d.interval_spin.setValue(5)
    got = []
    d.settings_saved.connect(got.append)
    d.ok_button.click()
    assert not d.isVisible() and d.result() == d.DialogCode.Accepted
    want = {"n_threads": 2, "n_gpu_layers": -1, "n_ctx": 8192, "image_tokens": 560, "use_drafter": False,
            "language": "German",
            "translate_to": "English", "screen_capture": True, "capture_interval": 5.0}
    assert {k: saved(home)[k] for k in want} == want
    assert got == [set(want)]
    assert changed == [1]  # how the model runs changed: it reloads
    assert not [p for p in home.iterdir() if p.name.endswith(".part")]
    services.close()

    again = build_services(home)  # the next start
    try:
        assert {k: getattr(again.settings, k) for k in want} == want
        d2 = dialog(qtbot, again, sd=NoPortAudio())
        assert (d2.threads_spin.value(), d2.gpu_spin.value(), d2.ctx_spin.value()) == (2, -1, 8192)
        assert (d2.language_box.currentText(), d2.translate_box.currentText()) == ("German", "English")
        assert d2.screen_check.isChecked() and d2.interval_spin.value() == 5.0 and d2.interval_spin.isEnabled()
        d2.reject()
    finally:
        again.close()


def test_a_change_that_does_not_touch_the_model_does_not_reload_it(qtbot, home, services, changed):
    d = dialog(qtbot, services, sd=NoPortAudio())
    d.language_box.setEditText("Français")
    d.ok_button.click()
    assert saved(home)["language"] == "Français" and changed == []


def test_cancel_changes_nothing(qtbot, home, services, changed):
    d = dialog(qtbot, services, sd=NoPortAudio())
    d.ctx_spin.setValue(4096)
    d.reject()
    assert not (home / "settings.json").exists() and services.settings.n_ctx == Settings().n_ctx
    assert changed == []


@pytest.mark.parametrize("language, target, words", [
    ("German", "german", "The translation language is the meeting language (German)"),
    ("<b>x</b>", "", "The meeting language “<b>x</b>” is not a language name"),
    ("", "Klingon 2", "The translation language “Klingon 2” is not a language name"),
])
def test_validation_in_plain_words(qtbot, home, services, language, target, words):
    d = dialog(qtbot, services, sd=NoPortAudio())
    d.language_box.setEditText(language)
    d.translate_box.setEditText(target)
    d.ok_button.click()
    assert d.isVisible() and d.message.isVisible() and d.message.text().startswith(words)
    assert not (home / "settings.json").exists()
    d.language_box.setEditText("")
    d.translate_box.setEditText("")
    d.ok_button.click()  # fixed: it saves
    assert not d.isVisible() and (home / "settings.json").exists()


def test_a_failed_save_keeps_the_old_settings(qtbot, home, services, changed, monkeypatch):
    services.save_settings()
    before = saved(home)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    d = dialog(qtbot, services, sd=NoPortAudio())
    d.ctx_spin.setValue(4096)
    d.ok_button.click()
    assert d.isVisible()
    assert d.message.text() == "The settings could not be saved (No space left on device); nothing was changed."
    assert services.settings.n_ctx == Settings().n_ctx and saved(home) == before and changed == []


def test_without_portaudio_the_defaults_are_offered(qtbot, home, services):
    d = dialog(qtbot, services, sd=NoPortAudio())
    assert d.devices_note.text().startswith("The audio devices could not be listed (PortAudio library not found)")
    assert [d.mic_box.itemData(i) for i in range(d.mic_box.count())] == ["default"]
    assert [d.system_box.itemData(i) for i in range(d.system_box.count())] == ["auto", "off"]
    d.system_box.setCurrentIndex(1)
    d.ok_button.click()
    assert (saved(home)["mic_device"], saved(home)["system_device"]) == ("default", "off")


def test_audio_devices_from_portaudio(qtbot, home, services, pulse):  # noqa: F811
    services.settings.system_device = "usb headset"  # chosen once, unplugged now
    d = dialog(qtbot, services)
    mics = [d.mic_box.itemData(i) for i in range(d.mic_box.count())]
    assert mics[0] == "default" and pulse.mic in mics and pulse.system in mics
    assert d.devices_note.text().endswith("audio input(s) found.")
    assert d.system_box.currentText() == "usb headset (not connected)"  # kept, not replaced
    d.mic_box.setCurrentIndex(mics.index(pulse.mic))
    d.system_box.setCurrentIndex(d.system_box.findData(pulse.system))
    d.ok_button.click()
    assert (saved(home)["mic_device"], saved(home)["system_device"]) == (pulse.mic, pulse.system)


def test_open_data_folder(qtbot, home, services, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    d = dialog(qtbot, services, sd=NoPortAudio())
    d.open_folder_button.click()
    assert opened == [str(home)]


def test_model_button_imports_and_ok_keeps_the_new_model(qtbot, home, services, tiny_model, changed):
    d = dialog(qtbot, services, sd=NoPortAudio())
    assert d.model_label.text().startswith("No model yet")
    d.ctx_spin.setValue(4096)
    d.model_button.click()
    md = d.model_dialog
    assert md is not None and md.isVisible()
    md.setup.model_edit.setText(str(tiny_model.model))
    md.setup.mmproj_edit.setText(str(tiny_model.mmproj))
    md.setup.inplace_radio.setChecked(True)
    with qtbot.waitSignal(d.model_ready, timeout=WAIT):
        md.setup.import_button.click()
    assert not md.isVisible()
    assert d.model_label.text().startswith("tiny-gemma4 — Configured")
    assert changed == [1]
    d.ok_button.click()  # the dialog's own values on top of the model chosen meanwhile
    s = saved(home)
    assert (s["model_path"], s["model_name"], s["n_ctx"]) == (str(tiny_model.model.resolve()), "tiny-gemma4", 4096)
    assert changed == [1, 1]


def test_controls_are_named_and_reachable_by_keyboard(qtbot, services):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

    d = dialog(qtbot, services, sd=NoPortAudio())
    kinds = (QAbstractButton, QComboBox, QLineEdit, QSpinBox, QDoubleSpinBox)
    controls = [w for w in d.findChildren(QWidget) if isinstance(w, kinds)
                and not (isinstance(w, QLineEdit) and isinstance(w.parent(), (QComboBox, QSpinBox, QDoubleSpinBox)))
                and w.parent() is not None and type(w.parent()).__name__ != "QTabBar"]
    assert len(controls) >= 14
    unnamed = [w for w in controls if not w.accessibleName()]
    assert unnamed == []
    assert all(w.focusPolicy() & Qt.FocusPolicy.TabFocus for w in controls)


def test_words_and_notes_are_saved_and_reloaded(qtbot, home, services, changed, tmp_path):
    d = dialog(qtbot, services, sd=NoPortAudio())
    w = d.words
    w.glossary_edit.setPlainText("Minutely\n  Kubernetes \n\nMinutely\n")
    w.rules_edit.setPlainText("Mini Lee -> Minutely\nno arrow here\n")
    d.ok_button.click()
    assert d.isVisible() and "line 2" in d.message.text() and "wrong -> right" in d.message.text()
    assert not (home / "settings.json").exists()
    w.rules_edit.setPlainText("Mini Lee -> Minutely\n  cube ernetes->Kubernetes\n")
    w.calendar_edit.setText(str(tmp_path / "cal"))
    w.notes_edit.setText(str(tmp_path / "vault"))
    w.auto_export_check.setChecked(True)
    d.ok_button.click()
    assert not d.isVisible()
    want = {"glossary": ["Minutely", "Kubernetes"],
            "replacements": {"Mini Lee": "Minutely", "cube ernetes": "Kubernetes"},
            "calendar_folder": str(tmp_path / "cal"), "notes_folder": str(tmp_path / "vault"),
            "notes_auto_export": True}
    assert {k: saved(home)[k] for k in want} == want
    assert changed == []
    services.close()

    again = build_services(home)
    try:
        assert {k: getattr(again.settings, k) for k in want} == want
        d2 = dialog(qtbot, again, sd=NoPortAudio())
        assert d2.words.values() == want
        assert d2.words.rules_edit.toPlainText() == "Mini Lee -> Minutely\ncube ernetes -> Kubernetes"
        d2.reject()
    finally:
        again.close()


def test_a_model_server_is_chosen_checked_and_reloads_the_model(qtbot, home, services, changed):
    import socket

    d = dialog(qtbot, services, sd=NoPortAudio())
    page = d.server
    assert page.local_radio.isChecked() and not page.url_edit.isEnabled()
    page.remote_radio.setChecked(True)
    assert page.url_edit.isEnabled()
    d.ok_button.click()  # on a server, but no address
    assert d.isVisible() and "server's address" in d.message.text()
    page.url_edit.setText("gpu-box:8080")
    d.ok_button.click()
    assert d.isVisible() and "not usable" in d.message.text()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page.url_edit.setText(f"http://127.0.0.1:{port}")
    page.test_button.click()
    qtbot.waitUntil(lambda: page.test_button.isEnabled() and "cannot reach" in page.result.text(), timeout=WAIT)
    assert f"127.0.0.1:{port}" in page.result.text() and "\n" not in page.result.text()
    page.token_edit.setText("s3cret")
    page.audio_check.setChecked(False)
    d.ok_button.click()
    assert not d.isVisible()
    assert {k: saved(home)[k] for k in ("model_server", "model_server_token", "model_server_audio")} == \
        {"model_server": f"http://127.0.0.1:{port}", "model_server_token": "s3cret", "model_server_audio": False}
    assert changed == [1]  # the next job uses the server
    assert services.model.has_model()  # a server counts as a model: jobs are not refused for want of one
    again = dialog(qtbot, services, sd=NoPortAudio())
    assert f"on http://127.0.0.1:{port}" in again.model_label.text()  # says where the model answers
    again.reject()
