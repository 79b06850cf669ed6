"""A meeting recorded during a calendar event takes its title and attendees when it starts, and
the whole recording decides again when it stops (the devices are a stand-in here; the real
recorder is tested in tests/capture and tests/pipeline/test_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.capture.tracks import RecordingResult
from app.library import Library
from app.pipeline import meeting as meeting_mod
from app.pipeline.calendar import import_file
from tests.support.ics import calendar


class FakeRecorder:
    def __init__(self, folder, *, on_ready, duration, **_):
        self.folder, self.on_ready, self.seconds = folder, on_ready, duration
        self.tracks, self.notices, self.duration = ["mic"], [], 0.0

    def start(self):
        self.on_ready()

    def stop(self):
        self.duration = self.seconds
        return RecordingResult(self.folder, self.seconds, {}, None)


def event(uid, title, start, end, *people):
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [f"ATTENDEE;CN={p}:mailto:{p.split()[0].lower()}@example.com" for p in people]
    return "\n".join(["BEGIN:VEVENT", f"UID:{uid}", f"SUMMARY:{title}", f"DTSTART:{start:{fmt}}",
                      f"DTEND:{end:{fmt}}", *lines, "END:VEVENT"])


@pytest.fixture
def lib(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "cal.ics").write_text(calendar(
        event("a", "Design sync", now - timedelta(minutes=30), now + timedelta(minutes=2), "Ana Lima", "Chen Wei"),
        event("b", "Hiring panel", now, now + timedelta(minutes=60), "Eve Park", "Ana Lima", "Bob Stone"),
        tz=False), newline="")
    with Library.open(tmp_path / "data") as lib:
        import_file(lib, tmp_path / "cal.ics")
        yield lib


def record(lib, monkeypatch, seconds, title=None):
    monkeypatch.setattr(meeting_mod, "Recorder", lambda folder, **kw: FakeRecorder(folder, duration=seconds, **kw))
    m = meeting_mod.Meeting(lib, mic="default", title=title)
    sid = m.start()
    at_start = (lib.get_session(sid).title, [a.name for a in lib.events.session_attendees(sid)])
    m.stop()
    return sid, at_start, m


def test_start_takes_the_nearest_event_and_stop_the_one_with_the_largest_share(lib, monkeypatch):
    sid, at_start, m = record(lib, monkeypatch, 45 * 60)
    assert at_start[0] == "Hiring panel"   # both run now: the one that just started
    s = lib.get_session(sid)
    assert s.title == "Hiring panel" and [a.name for a in lib.events.session_attendees(sid)] == \
        ["Eve Park", "Ana Lima", "Bob Stone"]
    assert m.options.speakers == 3 and m.options.hints == ["Eve Park", "Ana Lima", "Bob Stone"]


def test_a_title_the_user_gave_is_kept(lib, monkeypatch):
    sid, at_start, _ = record(lib, monkeypatch, 45 * 60, title="My notes")
    assert at_start[0] == "My notes" and lib.get_session(sid).title == "My notes"
    assert len(lib.events.session_attendees(sid)) == 3
