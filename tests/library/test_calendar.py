"""Calendars from real .ics files into a real library file: recurrence, time zones, re-import,
the event a recording belongs to, and a session taking its title and attendees."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.library import Library
from app.library.ics import CalendarError
from app.pipeline.calendar import (
    apply_event,
    import_file,
    import_folder,
    import_path,
    session_options,
    suggested_speaker_names,
)
from app.pipeline.utterances import TranscribeOptions
from tests.support import ics

NOW = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def work(tmp_path, *events):
    return ics.write(tmp_path / "work.ics", *(events or (ics.WEEKLY, ics.ALL_DAY, ics.REVIEW, ics.FLOATING)))


def test_recurrence_exceptions_and_time_zones(lib, tmp_path):
    r = import_file(lib, work(tmp_path), now=NOW, tz=BERLIN)
    assert (r.calendars, r.added, r.updated, r.removed, r.total) == (1, 8, 0, 0, 8)
    standups = [e for e in lib.events_between("2026-10-01T00:00:00Z", "2026-12-31T00:00:00Z")
                if e.uid.startswith("standup")]
    # 09:30 Berlin is 07:30 UTC in summer time, 08:30 after 25 Oct; 2 Nov is cancelled; 9 Nov moved
    assert [(e.start, e.end) for e in standups] == [
        ("2026-10-19T07:30:00Z", "2026-10-19T08:00:00Z"), ("2026-10-26T08:30:00Z", "2026-10-26T09:00:00Z"),
        ("2026-11-09T10:00:00Z", "2026-11-09T10:30:00Z"), ("2026-11-16T08:30:00Z", "2026-11-16T09:00:00Z"),
        ("2026-11-23T08:30:00Z", "2026-11-23T09:00:00Z")]
    moved = standups[2]
    assert moved.title == "Team stand-up (moved)" and moved.recurrence_id == "2026-11-09T08:30:00Z"
    first = standups[0]
    assert first.tz == "W. Europe Standard Time" and first.location == "Room 4"
    assert first.organizer is not None and first.organizer.name == "Bob Stone"
    # declined people and rooms are no attendees; addresses are lower case
    assert [(a.name, a.email) for a in first.attendees] == [
        ("Ana Lima", "ana@example.com"), ("Chen Wei", "chen@example.com"), ("Bob Stone", "bob@example.com")]
    offsite = next(e for e in lib.events_between("2026-10-26T00:00:00Z", "2026-10-27T00:00:00Z") if e.all_day)
    assert (offsite.start, offsite.end) == ("2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z")  # Berlin midnight
    lunch = next(e for e in lib.events_between("2026-10-27T00:00:00Z", "2026-10-28T00:00:00Z")
                 if e.title == "Lunch")
    assert lunch.start == "2026-10-27T11:00:00Z" and lunch.tz is None  # floating: local time


def test_reimport_updates_in_place_and_drops_what_is_gone(lib, tmp_path):
    path = work(tmp_path)
    import_file(lib, path, now=NOW, tz=BERLIN)
    ids = {(e.uid, e.recurrence_id): e.id for e in lib.events_between("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z")}
    again = import_file(lib, path, now=NOW, tz=BERLIN)
    assert (again.added, again.updated, again.removed, again.total) == (0, 8, 0, 8)
    same = {(e.uid, e.recurrence_id): e.id for e in lib.events_between("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z")}
    assert same == ids  # the same rows, not new ones
    # the review is renamed, the offsite and the lunch are deleted in the calendar app
    ics.write(path, ics.WEEKLY, ics.REVIEW.replace("Budget review", "Budget review (Q4)"))
    r = import_file(lib, path, now=NOW, tz=BERLIN)
    assert (r.added, r.updated, r.removed, r.total) == (0, 6, 2, 6)
    titles = {e.title for e in lib.events_between("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z")}
    assert titles == {"Team stand-up", "Team stand-up (moved)", "Budget review (Q4)"}
    assert lib.conn.execute("SELECT count(*) FROM event_attendees WHERE event_id NOT IN "
                            "(SELECT id FROM events)").fetchone()[0] == 0


def test_the_event_a_recording_belongs_to(lib, tmp_path):
    import_file(lib, work(tmp_path), now=NOW, tz=BERLIN)

    def at(t, end=None):
        ev = lib.event_at(f"2026-10-26T{t}:00Z", f"2026-10-26T{end}:00Z" if end else None)
        return ev.title if ev else None

    assert at("08:27") == "Team stand-up"           # a few minutes early still counts
    assert at("08:20") is None                       # ten minutes early does not
    assert at("08:31", "08:58") == "Team stand-up"
    assert at("08:52") == "Budget review"            # both run: the one that just started
    assert at("08:45", "09:50") == "Budget review"   # the largest share of the recording
    assert at("12:00") is None                       # an all-day event is no meeting
    assert [e.title for e in lib.events.by_attendee("eve")] == ["Budget review"]
    assert {e.start[:10] for e in lib.events.by_attendee("Chen")} == {"2026-10-19", "2026-10-26",
                                                                      "2026-11-16", "2026-11-23"}


def test_a_recording_takes_the_event_title_and_attendees(lib, tmp_path):
    import_file(lib, work(tmp_path), now=NOW, tz=BERLIN)
    lib.add_voice_profile("Zoe Known", b"\0" * 16)
    s = lib.create_session("Meeting 2026-10-26 09:29", "recording", created="2026-10-26T08:29:00Z")
    ev = apply_event(lib, s.id)
    assert ev is not None and lib.get_session(s.id).title == "Team stand-up"
    # the organizer is an attendee once; the session keeps them when the calendar changes
    names = ["Bob Stone", "Ana Lima", "Chen Wei"]
    assert [a.name for a in lib.events.session_attendees(s.id)] == names
    assert suggested_speaker_names(lib, s.id) == [*names, "Zoe Known"]
    opts = session_options(lib, s.id, TranscribeOptions(hints=["Minutely", "ana lima"]))
    assert opts.speakers == 3 and opts.hints == ["Minutely", "ana lima", "Bob Stone", "Chen Wei"]
    assert session_options(lib, s.id, TranscribeOptions(speakers=2)).speakers == 2  # the user's count wins
    ics.write(tmp_path / "work.ics", ics.REVIEW)
    import_file(lib, tmp_path / "work.ics", now=NOW, tz=BERLIN)
    assert [a.name for a in lib.events.session_attendees(s.id)] == names
    # library search finds the session by an attendee's name (or address)
    hits = lib.search("Chen")
    assert any(h.session_id == s.id and h.source == "attendee" for h in hits)
    assert any(h.session_id == s.id for h in lib.search("chen@example"))
    # a title the user gave stays; the attendees still come
    mine = lib.create_session("My own title", "recording", created="2026-10-26T08:55:00Z")
    lib.update_session(mine.id, duration=3000)
    assert apply_event(lib, mine.id, replace_title=False).title == "Budget review"
    assert lib.get_session(mine.id).title == "My own title"
    assert [a.name for a in lib.events.session_attendees(mine.id)] == ["Eve Park"]
    # no event at that time: nothing changes
    lone = lib.create_session("Alone", "recording", created="2026-10-28T03:00:00Z")
    assert apply_event(lib, lone.id) is None and lib.get_session(lone.id).title == "Alone"
    assert suggested_speaker_names(lib, lone.id) == ["Zoe Known"]
    lib.delete_session(s.id)
    assert lib.conn.execute("SELECT count(*) FROM session_attendees WHERE session_id = ?", (s.id,)).fetchone()[0] == 0


def test_a_watched_folder(lib, tmp_path):
    folder = tmp_path / "calendars"
    folder.mkdir()
    ics.write(folder / "work.ics", ics.WEEKLY)
    ics.write(folder / "Private.ICS", ics.FLOATING, name="Private", tz=False)
    (folder / "broken.ics").write_text("this is not a calendar\n")
    (folder / "notes.txt").write_text("BEGIN:VCALENDAR\n")
    r = import_path(lib, folder, now=NOW, tz=BERLIN)
    assert (r.calendars, r.total) == (2, 6) and len(r.errors) == 1 and "broken.ics" in r.errors[0]
    assert sorted(c["name"] for c in lib.events.calendars()) == ["Private", "Work"]
    again = import_folder(lib, folder, now=NOW, tz=BERLIN)
    assert (again.added, again.total) == (0, 6)
    (folder / "work.ics").unlink()
    r = import_folder(lib, folder, now=NOW, tz=BERLIN)
    assert r.removed == 5 and [c["name"] for c in lib.events.calendars()] == ["Private"]
    assert [e.title for e in lib.events_between("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z")] == ["Lunch"]


def test_files_that_are_no_calendar(lib, tmp_path):
    (tmp_path / "x.ics").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(CalendarError, match=r"x\.ics is not a calendar"):
        import_file(lib, tmp_path / "x.ics")
    with pytest.raises(CalendarError, match="not found"):
        import_path(lib, tmp_path / "missing.ics")
    with pytest.raises(CalendarError, match="folder not found"):
        import_folder(lib, tmp_path / "nowhere")
    assert lib.events.calendars() == []


def test_an_older_library_gains_the_calendar(tmp_path):
    import sqlite3

    from app.library import db as dbmod
    from app.library.schema import MIGRATIONS

    conn = sqlite3.connect(tmp_path / dbmod.DB_NAME, isolation_level=None)
    for v, sql in MIGRATIONS:
        if v <= 4:
            conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {v}; COMMIT;")
    conn.execute("INSERT INTO sessions (id, title, created, kind) "
                 "VALUES (1, 'Old', '2026-10-26T08:31:00Z', 'recording')")
    conn.close()
    ics.write(tmp_path / "work.ics", ics.WEEKLY)
    with Library.open(tmp_path) as lib:
        assert dbmod.user_version(lib.conn) == MIGRATIONS[-1][0]
        import_file(lib, tmp_path / "work.ics", now=NOW)
        assert apply_event(lib, 1).title == "Team stand-up" and lib.get_session(1).title == "Team stand-up"
        assert lib.search("Ana")[0].session_id == 1
