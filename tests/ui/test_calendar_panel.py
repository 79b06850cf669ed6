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
        label = w.calendar.findChildren(type(w.calendar.heading))[1]
        assert "Design sync" in label.text() and "3 attendees" in label.text()
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
