"""The window's meeting detection with a fake detector and a stand-in recording bar: an offer for a
meeting app, recording at once for an allowed app, auto-stop with a countdown in the bar."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PySide6.QtCore import QObject, Signal

from app.capture.meetings_detect import Capture
from app.settings import Settings
from app.ui.meeting_watch import MeetingWatch

ZOOM = Capture("ZOOM VoiceEngine", "zoom", 7, "2")


class FakeDetector:
    def __init__(self):
        self.now: list[Capture] = []

    def poll(self):
        return list(self.now)


class FakeRunner:  # the pool, run at once: the result comes back as on_done would bring it
    def run(self, title, fn, *, on_done=None, on_failed=None, **_):
        on_done(fn(None))


class FakeBar(QObject):
    message = Signal(str)

    def __init__(self):
        super().__init__()
        self.runner = None
        self.messages: list[str] = []
        self.message.connect(self.messages.append)
        self.levels = {"mic": (0.1, 0.2)}

    @property
    def recording(self):
        return self.runner is not None

    def start(self):
        self.runner = SimpleNamespace(meeting=SimpleNamespace(levels=self.levels))

    def stop(self):
        self.runner = None


def make(qtbot, **settings):
    services = SimpleNamespace(settings=Settings(**settings), runner=FakeRunner())
    bar, det = FakeBar(), FakeDetector()
    w = MeetingWatch(services, bar, detector=det, interval_ms=10, release_s=0.2)
    return w, bar, det


def test_a_meeting_app_is_offered_and_recorded_on_request(qtbot):
    w, bar, det = make(qtbot)
    w._tick()
    det.now = [ZOOM]
    with qtbot.waitSignal(w.offered) as offered:
        w._tick()
    assert offered.args == ["Zoom"] and not bar.recording
    assert any("Record this meeting (Zoom)?" in m for m in bar.messages)  # no tray offscreen: the bar says it
    w.record()  # the offer's Record action
    assert bar.recording and w.app == "Zoom"


def test_an_allowed_app_records_at_once_and_stops_with_a_countdown_when_it_lets_go(qtbot):
    w, bar, det = make(qtbot, auto_record_apps=["zoom"])
    det.now = [ZOOM]
    w._tick()
    assert bar.recording and "Zoom started using the microphone: recording" in bar.messages
    det.now = []
    w.start()
    try:
        with qtbot.waitSignal(w.countdown, timeout=5000) as cd:
            pass
        assert cd.args[0].startswith("Auto-stop in") and "released the microphone (Zoom)" in cd.args[0]
        qtbot.waitUntil(lambda: not bar.recording, timeout=5000)
    finally:
        w.stop()
    assert "Recording stopped: the app released the microphone" in bar.messages


def test_silence_stops_it_too_and_sound_cancels_the_countdown(qtbot):
    w, bar, det = make(qtbot, auto_record_apps=["Zoom"], auto_stop_silence_minutes=0.01)  # 0.6 s
    det.now = [ZOOM]
    w._tick()
    bar.levels["mic"] = (0.0, 0.0)
    w.start()
    try:
        qtbot.waitUntil(lambda: any(m.startswith("Auto-stop in") for m in bar.messages), timeout=5000)
        bar.levels["mic"] = (0.2, 0.3)
        qtbot.waitUntil(lambda: "Auto-stop cancelled" in bar.messages, timeout=5000)
        assert bar.recording
        bar.levels["mic"] = (0.0, 0.0)
        qtbot.waitUntil(lambda: not bar.recording, timeout=5000)
    finally:
        w.stop()
    assert "Recording stopped: silence on every track" in bar.messages


@pytest.mark.slow
def test_the_window_offers_to_record_when_zoom_takes_the_virtual_mic(qtbot, tmp_path, pulse):
    from app.ui.bootstrap import build_services
    from app.ui.main_window import MainWindow

    services = build_services(tmp_path / "home")
    services.settings.mic_device, services.settings.system_device = pulse.mic, "off"
    w = MainWindow(services)
    qtbot.addWidget(w)
    zoom = None
    try:
        assert w.meeting_watch.timer.isActive()
        zoom = pulse.meeting_app()
        with qtbot.waitSignal(w.meeting_watch.offered, timeout=20_000) as offered:
            pass
        assert offered.args == ["Zoom"] and not w.recording.recording
    finally:
        if zoom is not None:
            zoom.terminate()
            zoom.wait(10)
        w.close()
        services.close()


def test_no_offers_when_detection_is_off_but_allowed_apps_still_record(qtbot):
    w, bar, det = make(qtbot, detect_meetings=False)
    w.start()
    assert not w.timer.isActive()  # nothing to do
    det.now = [ZOOM]
    w.services.settings.auto_record_apps = ["Teams"]
    w.start()
    try:
        assert w.timer.isActive()
        w._tick()
        assert not bar.recording and not any("Record this meeting" in m for m in bar.messages)
    finally:
        w.stop()


def test_the_settings_dialog_edits_the_detection_settings(qtbot, tmp_path):
    from app.ui.bootstrap import build_services
    from app.ui.settings_dialog import SettingsDialog

    services = build_services(tmp_path / "home")
    try:
        dlg = SettingsDialog(services)
        qtbot.addWidget(dlg)
        assert dlg.detect_check.isChecked() and dlg.silence_spin.value() == 5.0
        dlg.detect_check.setChecked(False)
        dlg.auto_apps_edit.setText(" Zoom,  Teams , ")
        dlg.silence_spin.setValue(0)
        dlg.accept()
        s = services.settings
        assert (s.detect_meetings, s.auto_record_apps, s.auto_stop_silence_minutes) == (False, ["Zoom", "Teams"], 0.0)
    finally:
        services.close()
