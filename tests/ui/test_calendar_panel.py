"""The calendar in the window: a real .ics imported through File ▸ Import calendar's path (the pool),
listed in "Today and upcoming", "Record this" starting a recording titled after the event; the
settings' calendar folder read at start; "Continue recording into this session" reaching Meeting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import app.pipeline.meeting as meeting_mod
from app.ui.bootstrap import build_services
from app.ui.main_window import MainWindow
from tests.support import ics

WAIT = 30_000


def event(uid: str, title: str, start: datetime, people: int) -> str:
    end = start + timedelta(minutes=30)
    lines = ["BEGIN:VEVENT", f"UID:{uid}", f"SUMMARY:{title}", f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
             f"DTEND:{end:%Y%m%dT%H%M%SZ}"]
    lines += [f"ATTENDEE;CN=Person {i}:mailto:p{i}@example.com" for i in range(people)]
    return "\n".join([*lines, "END:VEVENT"])


def soon(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def open_window(qtbot, home):
    services = build_services(home)
    w = MainWindow(services)
    qtbot.addWidget(w)
    w.show()
    return w, services


def test_an_imported_calendar_is_listed_and_record_this_starts_a_recording(qtbot, home, tmp_path, monkeypatch):
    path = ics.write(tmp_path / "work.ics", event("a@x", "Design sync", soon(2), 3),
                     event("b@x", "Far away", soon(24 * 10), 1), tz=False)
    w, services = open_window(qtbot, home)
    try:
        assert not w.calendar.isVisibleTo(w)  # nothing imported yet
        with qtbot.waitSignal(w.calendar.imported, timeout=WAIT):
            w.calendar.import_file(path)
        assert [e.title for e in w.calendar.events] == ["Design sync"]  # the next 7 days only
        assert w.calendar.isVisibleTo(w)
        from app.ui.calendar_panel import ElidedLabel

        (label,) = w.calendar.findChildren(ElidedLabel)
        assert label.full == "Design sync" and "3 attendees" in label.accessibleName()
        calls = []
        monkeypatch.setattr(w.recording, "start", lambda **kw: calls.append(kw))
        w.calendar.record_buttons[0].click()
        assert calls == [{"title": "Design sync"}]
        got = []
        w.calendar.message.connect(got.append)
        with qtbot.waitSignal(w.calendar.message, timeout=WAIT):
            w.calendar.import_file(tmp_path / "missing.ics")
        assert len(got) == 1 and "\n" not in got[0] and "not found" in got[0]
    finally:
        w.close()
        services.close()


def test_a_busy_week_scrolls_grouped_by_day_and_leaves_the_session_list_its_room(qtbot, home, tmp_path):
    from app.ui.calendar_panel import MAX_LIST_PX, ElidedLabel

    long = "Customer call — Acme Corporation quarterly business review and renewal planning"
    evs = [event(f"e{i}@x", long if i == 3 else f"Meeting {i}", soon(0.5 + 4 * i), i % 4) for i in range(40)]
    path = ics.write(tmp_path / "busy.ics", *evs, tz=False)
    w, services = open_window(qtbot, home)
    try:
        w.resize(1100, 720)
        with qtbot.waitSignal(w.calendar.imported, timeout=WAIT):
            w.calendar.import_file(path)
        cal = w.calendar
        n = len(cal.events)
        assert n == len(cal.record_buttons) == 40  # every 4 h from now: all within the 7 days
        assert "(" + str(n) + ")" in cal.heading.text()
        days = [h.accessibleName() for h in cal.day_headings]
        assert days[:2] == ["Today", "Tomorrow"] or days[:1] == ["Tomorrow"]
        assert len(days) == len(set(days)) >= 6  # one heading per day, in order
        qtbot.waitUntil(lambda: cal.list.height() <= MAX_LIST_PX and cal.list.verticalScrollBar().maximum() > 0)
        assert w.session_list.height() >= 200, "the calendar must not squeeze the session list (5 rows)"
        assert w.height() <= 720
        (label,) = [x for x in cal.findChildren(ElidedLabel) if x.full == long]
        assert label.text().endswith("…") and label.toolTip() == long and long in label.accessibleName()
        cal.list.ensureWidgetVisible(cal.record_buttons[-1])
        qtbot.waitUntil(lambda: cal.list.verticalScrollBar().value() == cal.list.verticalScrollBar().maximum())
    finally:
        w.close()
        services.close()


def test_the_calendar_folder_is_read_at_start(qtbot, home, tmp_path):
    folder = tmp_path / "cal"
    folder.mkdir()
    ics.write(folder / "team.ics", event("c@x", "Planning", soon(1), 0), tz=False)
    services = build_services(home)
    services.settings.calendar_folder = str(folder)
    services.save_settings()
    services.close()
    w, services = open_window(qtbot, home)
    try:
        qtbot.waitUntil(lambda: [e.title for e in w.calendar.events] == ["Planning"], timeout=WAIT)
        assert w.calendar.timer.isActive()
    finally:
        w.close()
        services.close()


def test_continue_recording_reaches_meeting_with_the_session(qtbot, home, monkeypatch):
    seen = []

    class FakeMeeting:
        def __init__(self, lib, **kw):
            seen.append(kw)

        def start(self):
            raise RuntimeError("no devices in this test")

    monkeypatch.setattr(meeting_mod, "Meeting", FakeMeeting)
    w, services = open_window(qtbot, home)
    try:
        sid = services.library.create_session("Weekly", "recording").id
        w.sessions.reload()
        w.open_session(sid)
        assert w.continue_action in w.session_list.actions()
        with qtbot.waitSignal(w.recording.message, timeout=WAIT) as said:
            w.continue_action.trigger()
        assert said.args[0] == "Could not record: no devices in this test"
        assert seen[0]["continue_session"] == sid and not w.recording.recording
    finally:
        w.close()
        services.close()


# --- real recordings from the panel and the menu, on the private PulseAudio -------------------
def _record_until_heard(qtbot, w, pulse, wav, start) -> int:
    """Start a recording with `start()`, play `wav` into the virtual mic once the bar says
    Recording, wait until its tail is on disk, stop; the session id."""
    bar = w.recording
    with qtbot.waitSignal(bar.session_started, timeout=WAIT) as started:
        start()
    qtbot.waitUntil(lambda: "Recording" in bar.elapsed.text(), timeout=WAIT)
    assert pulse.play(wav, "micfeed").wait(30) == 0
    m = bar.runner.meeting
    at = m.position
    qtbot.waitUntil(lambda: m.position >= at + 0.5, timeout=WAIT)  # the sound's tail is on disk
    with qtbot.waitSignal(bar.session_finished, timeout=60_000):
        bar.record.trigger()
    return started.args[0]


def _settled(qtbot, w) -> None:
    """A recording made without a model queues its transcription, which waits for one."""
    from app.ui.tasks import WAITING

    tasks = lambda: [r.task for r in w.jobs.rows if r.task is not None]  # noqa: E731
    qtbot.waitUntil(lambda: all(t.finished or t.state == WAITING for t in tasks()), timeout=60_000)


@pytest.mark.slow
def test_record_this_and_continue_make_real_recordings(qtbot, home, tmp_path, pulse):
    """"Record this" records the virtual mic into a session titled after the event; "Continue
    recording into this session" records a second part after it: the session's audio holds the
    first part's chirp where it was and the second part's (a down-sweep) at the part's offset."""
    from app.media.audio import write_wav
    from tests.support.audio import aligned_corr
    from tests.support.chirp import RATE, chirp, find_chirp, write_chirp
    from tests.support.meetings import read_wav

    up = write_chirp(tmp_path / "up.wav")
    down_src = chirp(f0=3000.0, f1=400.0)
    down = write_wav(tmp_path / "down.wav", down_src)
    path = ics.write(tmp_path / "work.ics", event("a@x", "Design sync", soon(1), 2), tz=False)
    services = build_services(home)
    services.settings.mic_device, services.settings.system_device = pulse.mic, "off"
    w = MainWindow(services)
    qtbot.addWidget(w)
    w.show()
    lib = services.library
    try:
        with qtbot.waitSignal(w.calendar.imported, timeout=WAIT):
            w.calendar.import_file(path)
        sid = _record_until_heard(qtbot, w, pulse, up, w.calendar.record_buttons[0].click)
        _settled(qtbot, w)
        first = lib.get_session(sid)
        assert first.title == "Design sync" and first.kind == "recording"
        (audio,) = lib.media(sid, "audio")
        onset, corr = find_chirp(read_wav(lib.absolute(audio)))
        print(f"Record this: chirp at {onset:.3f} s (correlation {corr:.3f}), {first.duration:.2f} s recorded")
        assert corr >= 0.95, f"the chirp was not recorded ({corr:.3f})"

        w.open_session(sid)
        assert _record_until_heard(qtbot, w, pulse, down, w.continue_action.trigger) == sid
        _settled(qtbot, w)
        assert [s.id for s in lib.sessions()] == [sid]
        whole = read_wav(lib.session_audio(sid))
        part = read_wav(lib.media_dir(sid, create=False) / "recording-2" / "mic.wav")
        s = lib.get_session(sid)
        assert s.duration == pytest.approx(first.duration + len(part) / RATE, abs=0.1)
        assert len(whole) / RATE == pytest.approx(s.duration, abs=0.1)
        assert find_chirp(whole) == pytest.approx((onset, corr), abs=0.01)  # the first part intact
        corr2, lag2 = aligned_corr(whole, down_src)
        corr_part, lag_part = aligned_corr(part, down_src)
        print(f"Continue: down-sweep at {lag2 / RATE:.3f} s of the session (correlation {corr2:.3f}); "
              f"the part starts at {first.duration:.3f} s")
        assert corr2 >= 0.95 and corr_part >= 0.95
        assert lag2 / RATE == pytest.approx(first.duration + lag_part / RATE, abs=0.01)  # at the part's offset
        assert lag2 / RATE > first.duration
    finally:
        w.close()
        services.close()
