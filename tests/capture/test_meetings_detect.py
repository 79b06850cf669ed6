"""Meeting detection: the watcher's logic with a fake detector, pactl's two output formats, and the
real thing on the private PulseAudio (a `parecord` with Zoom's properties plays the meeting app)."""

from __future__ import annotations

import json
import threading

import pytest

from app.capture.meetings_detect import (
    Capture,
    MeetingWatcher,
    PulseDetector,
    meeting_app,
    parse_json,
    parse_text,
)
from app.pipeline.autostop import AutoStop
from tests.support.cli_proc import wait_for

ZOOM = Capture("ZOOM VoiceEngine", "zoom", 101, "2")
FIREFOX = Capture("Firefox", "firefox-esr", 102, "2")
AUDACITY = Capture("Audacity", "audacity", 103, "2")


class FakeDetector:
    def __init__(self):
        self.now: list[Capture] | Exception = []

    def poll(self):
        if isinstance(self.now, Exception):
            raise self.now
        return list(self.now)


def test_watcher_says_when_meeting_apps_start_and_stop():
    det, seen = FakeDetector(), []
    w = MeetingWatcher(det, on_started=lambda a: seen.append(("+", a)), on_stopped=lambda a: seen.append(("-", a)))
    assert w.step() == []
    det.now = [ZOOM, AUDACITY]  # Audacity is no meeting app
    assert w.step() == [("started", "Zoom")]
    det.now = [ZOOM, Capture("ZOOM VoiceEngine", "zoom", 101, "3")]  # a second stream: still one Zoom
    assert w.step() == []
    det.now = OSError("pactl: connection refused")  # a failed poll changes nothing
    assert w.step() == [] and w.error
    det.now = [FIREFOX]  # Meet in a browser counts as the browser
    assert w.step() == [("stopped", "Zoom"), ("started", "Firefox")]
    det.now = []
    w.step()
    assert seen == [("+", "Zoom"), ("-", "Zoom"), ("+", "Firefox"), ("-", "Firefox")]


def test_watcher_any_app_and_extendable_list():
    det = FakeDetector()
    det.now = [AUDACITY]
    assert MeetingWatcher(det, any_app=True).step() == [("started", "Audacity")]
    assert MeetingWatcher(det, apps={"Audacity": ("audacity",)}).step() == [("started", "Audacity")]
    assert meeting_app(Capture("", "ms-teams", 1)) == "Teams"
    assert meeting_app(Capture("Chromium", "chromium", 1)) == "Chrome"


def test_watcher_run_polls_until_stopped():
    det, stop, polls = FakeDetector(), threading.Event(), []
    real = det.poll
    det.poll = lambda: polls.append(1) or (stop.set() if len(polls) >= 3 else None) or real()  # type: ignore
    MeetingWatcher(det, interval=0.0).run(stop)
    assert len(polls) == 3


PACTL_TEXT = """Source Output #0
\tDriver: module-remap-source.c
\tClient: n/a
\tSource: 1
\tProperties:
\t\tmedia.name = "Remapped Stream"

Source Output #7
\tDriver: protocol-native.c
\tClient: 3
\tSource: 2
\tSample Specification: s16le 2ch 44100Hz
\tProperties:
\t\tapplication.name = "ZOOM VoiceEngine"
\t\tapplication.process.binary = "zoom"
\t\tmedia.name = "the \\"call\\""
\t\tapplication.process.id = "4242"
"""


def test_pactl_text_and_json_parse_alike():
    text = parse_text(PACTL_TEXT)
    assert text[1] == ("2", {"application.name": "ZOOM VoiceEngine", "application.process.binary": "zoom",
                             "media.name": 'the "call"', "application.process.id": "4242"})
    js = parse_json(json.dumps([{"source": 2, "client": "3", "properties": text[1][1]}]))
    assert js == [text[1]]


class FakePactl(PulseDetector):
    def __init__(self, json_ok: bool, own_pids=()):
        super().__init__(own_pids)
        self.json_ok = json_ok

    def _run(self, *args):
        if args[0] == "-f":
            if not self.json_ok:
                raise OSError("pactl: unrecognized option '-f'")
            return json.dumps([{"source": int(s), "properties": p} for s, p in parse_text(PACTL_TEXT)])
        if args[:2] == ("list", "short"):
            return "0\tspeaker.monitor\tx\n1\tmicfeed.monitor\tx\n2\tvirtmic\tx\n"
        return PACTL_TEXT


@pytest.mark.parametrize("json_ok", [True, False])
def test_pulse_detector_skips_monitors_server_streams_and_its_own(json_ok):
    assert FakePactl(json_ok).poll() == [Capture("ZOOM VoiceEngine", "zoom", 4242, "2")]
    assert FakePactl(json_ok, own_pids=[4242]).poll() == []


def test_autostop_release_and_silence_with_countdown():
    t = [0.0]
    a = AutoStop(silence_s=60, release_s=10, countdown_s=30, clock=lambda: t[0])
    loud, quiet = {"mic": (0.1, 0.2), "system": (0.0, 0.0)}, {"mic": (0.0, 0.0), "system": (0.0, 0.0)}
    assert a.update(loud) is None
    a.app_released()
    t[0] = 4.0
    assert a.update(loud) is None
    t[0] = 5.0  # countdown: half the 10 s grace
    assert a.update(loud) == ("countdown", "the app released the microphone", 5.0)
    assert a.update(loud) is None  # said once
    a.app_back()  # the app came back: cancelled
    assert a.update(loud) == ("cancelled", "the app released the microphone", 0.0)
    t[0] = 30.0
    assert a.update(loud) is None  # the last sound at 30 s
    t[0] = 59.0
    assert a.update(quiet) is None
    t[0] = 61.0  # 60 s of silence ends at 90; the countdown begins 30 s before
    assert a.update(quiet) == ("countdown", "silence on every track", 29.0)
    t[0] = 80.0
    assert a.update(loud) == ("cancelled", "silence on every track", 0.0)  # someone spoke
    t[0] = 140.0
    assert a.update(quiet)[0] == "stop"  # type: ignore[index]
    a.app_released()
    t[0] = 150.0
    assert a.update(quiet) == ("stop", "silence on every track", 0.0)
    assert AutoStop(silence_s=0, clock=lambda: 1e9).update(quiet) is None  # 0: never on silence


@pytest.mark.slow
def test_pulse_detector_sees_a_zoom_client_start_and_stop(pulse):
    det = PulseDetector(env=pulse.env)
    events: list[tuple[str, str]] = []
    w = MeetingWatcher(det, on_started=lambda a: events.append(("started", a)),
                       on_stopped=lambda a: events.append(("stopped", a)))
    w.step()
    assert events == []
    zoom = pulse.meeting_app("zoom", "zoom")
    try:
        wait_for(lambda: w.step() or events, 20, "Zoom to be seen capturing the microphone")
        assert events == [("started", "Zoom")]
        (cap,) = w.active["Zoom"]
        assert cap.pid == zoom.pid and cap.binary == "zoom"
    finally:
        zoom.terminate()
        zoom.wait(10)
    wait_for(lambda: w.step() or len(events) > 1, 20, "Zoom to be seen releasing it")
    assert events == [("started", "Zoom"), ("stopped", "Zoom")]


@pytest.mark.parametrize("platform, system", [("darwin", "macOS"), ("win32", "Windows")])
def test_macos_and_windows_have_no_detector_and_say_so(monkeypatch, platform, system):
    from app.capture import meetings_detect

    monkeypatch.setattr(meetings_detect.sys, "platform", platform)
    assert meetings_detect.default_detector() is None
    why = meetings_detect.why_no_detector()
    assert "\n" not in why and f"not implemented on {system}" in why
