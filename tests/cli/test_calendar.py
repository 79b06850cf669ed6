"""`python main.py calendar ...` and `sessions export -f md-note` as a user runs them: real .ics
files, a real library file in a private data folder, one-line errors with the CLI's exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from app.library import Library
from tests.support.cli import assert_one_line_error, run
from tests.support.ics import ALL_DAY, calendar


def upcoming(tmp_path):
    """A weekly meeting from tomorrow on (Berlin time, with attendees) and the offsite (long past)."""
    day = (datetime.now() + timedelta(days=1)).strftime("%Y%m%d")
    weekly = f"""BEGIN:VEVENT
UID:planning@example.com
SUMMARY:Sprint planning
DTSTART;TZID=Europe/Berlin:{day}T100000
DTEND;TZID=Europe/Berlin:{day}T110000
RRULE:FREQ=WEEKLY
ATTENDEE;CN=Ana Lima:mailto:ana@example.com
ATTENDEE;CN=Chen Wei:mailto:chen@example.com
END:VEVENT"""
    path = tmp_path / "work.ics"
    path.write_text(calendar(weekly, ALL_DAY, tz=False), encoding="utf-8", newline="")
    return path


def test_import_and_list(tmp_path):
    path = upcoming(tmp_path)
    p = run("calendar", "import", str(path))
    assert p.returncode == 0, p.stderr
    assert "from 1 calendar(s)" in p.stdout and " new, 0 updated, 0 removed" in p.stdout
    p = run("calendar", "import", str(path), "--json")
    again = json.loads(p.stdout)
    assert again["added"] == 0 and again["updated"] == again["total"] > 0
    p = run("calendar", "list", "--days", "3", "--json")
    assert p.returncode == 0, p.stderr
    (ev,) = json.loads(p.stdout)
    assert ev["title"] == "Sprint planning" and [a["name"] for a in ev["attendees"]] == ["Ana Lima", "Chen Wei"]
    p = run("calendar", "list", "--days", "3")
    assert "Sprint planning  [Ana Lima, Chen Wei]" in p.stdout
    folder = tmp_path / "cals"
    folder.mkdir()
    (folder / "work.ics").write_bytes(path.read_bytes())
    p = run("calendar", "import", str(folder))
    assert p.returncode == 0 and "from 1 calendar(s)" in p.stdout, p.stderr


def test_one_line_errors(tmp_path):
    bad = tmp_path / "photo.ics"
    bad.write_bytes(b"\x89PNG\r\n" + bytes(100))
    p = run("calendar", "import", str(bad))
    assert_one_line_error(p, 2)
    assert "photo.ics is not a calendar" in p.stderr
    assert_one_line_error(run("calendar", "import", str(tmp_path / "nowhere")), 2)
    assert_one_line_error(run("calendar", "import"), 2)  # no path and no calendar_folder set
    p = run("calendar", "list", "--days", "-1")
    assert_one_line_error(p, 2)


def test_export_a_session_as_a_note_twice(tmp_path, _private_home):
    with Library.open(_private_home) as lib:
        s = lib.create_session("Sprint planning", "recording", created="2026-11-20T09:00:00Z")
        lib.add_segment(s.id, 0.0, 3.0, "We take the login story.", "S1")
    vault = tmp_path / "vault"
    vault.mkdir()
    p = run("sessions", "export", str(s.id), "-f", "md-note", "-o", str(vault))
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    assert path.endswith("2026-11-20 Sprint planning.md")
    assert run("sessions", "export", str(s.id), "-f", "md-note", "-o", str(vault)).stdout.strip() == path
    assert len(list(vault.glob("*.md"))) == 1
    assert_one_line_error(run("sessions", "export", str(s.id), "-f", "md-note", "-o", str(tmp_path / "no")), 2)
    assert_one_line_error(run("sessions", "export", str(s.id), "-f", "md-note"), 2)  # no folder set
