"""`python main.py sessions ...` over a real library file in a private data folder."""

from __future__ import annotations

import json

import pytest

from app.library import Library
from tests.support.cli import assert_one_line_error, run


@pytest.fixture
def filled(_private_home):
    with Library.open(_private_home) as lib:
        a = lib.create_session("Budget review", "recording", created="2026-11-20T09:00:00Z")
        lib.add_segments(a.id, [
            {"start": 0.0, "end": 4.0, "text": "Let us look at the marketing budget.", "speaker": "S1"},
            {"start": 4.5, "end": 9.0, "text": "It is too small for next quarter.", "speaker": "S2"},
            {"start": 65.0, "end": 70.0, "text": "Then we move money from travel.", "speaker": "S1"}])
        summary = lib.summaries.start(a.id, "general")
        lib.summaries.finish(summary.id, "Move travel money to marketing.",
                             action_items=[{"text": "Draft the new budget", "owner": "Ana"}])
        shot = lib.media_dir(a.id) / "shot.png"
        shot.write_bytes(b"png")
        lib.add_media(a.id, shot, "screenshot", offset=30)
        b = lib.create_session("Hiring sync", "file", source="/tmp/hiring.mp4", created="2026-11-21T09:00:00Z")
        lib.add_segment(b.id, 1.0, 3.0, "Two engineers start in January.", "S1")
        return a.id, b.id


def test_list(filled):
    a, b = filled
    p = run("sessions", "list", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == [b, a] and rows[1]["duration"] == 70.0
    p = run("sessions", "list")
    assert "Budget review" in p.stdout and "01:10" in p.stdout


def test_show(filled):
    a, _ = filled
    p = run("sessions", "show", str(a))
    assert p.returncode == 0, p.stderr
    assert "[01:05] S1: Then we move money from travel." in p.stdout
    assert "Move travel money to marketing." in p.stdout
    d = json.loads(run("sessions", "show", str(a), "--json").stdout)
    assert len(d["segments"]) == 3 and d["action_items"][0]["owner"] == "Ana"


def test_search(filled):
    a, b = filled
    p = run("sessions", "search", "travel", "--json")
    hits = json.loads(p.stdout)
    assert {(h["session_id"], h["source"]) for h in hits} == {(a, "segment"), (a, "summary")}
    seg = next(h for h in hits if h["source"] == "segment")
    assert seg["offset"] == 65.0 and "[travel]" in seg["snippet"]
    p = run("sessions", "search", "engin")
    assert p.returncode == 0 and "[00:01] S1: Two [engineers] start in January." in p.stdout
    assert "no matches" in run("sessions", "search", "zebra").stdout


def test_rename_speaker_shows_everywhere(filled):
    a, _ = filled
    p = run("sessions", "rename-speaker", str(a), "S1", "Ana")
    assert p.returncode == 0 and "S1 is now Ana" in p.stdout
    assert "[00:00] Ana: Let us look" in run("sessions", "show", str(a)).stdout
    assert_one_line_error(run("sessions", "rename-speaker", str(a), "S7", "Bob"), 2)


@pytest.mark.parametrize("fmt", ["md", "txt", "srt", "vtt", "json"])
def test_export_to_stdout_and_folder(filled, tmp_path, fmt):
    a, _ = filled
    p = run("sessions", "export", str(a), "--format", fmt)
    assert p.returncode == 0, p.stderr
    assert "marketing budget" in p.stdout
    out = tmp_path / "exports"
    out.mkdir()
    p = run("sessions", "export", str(a), "--format", fmt, "-o", str(out))
    assert p.returncode == 0, p.stderr
    written = [f for f in out.iterdir()]
    assert len(written) == 1 and written[0].suffix == f".{fmt}"
    assert written[0].read_text(encoding="utf-8") == run("sessions", "export", str(a), "--format", fmt).stdout


def test_export_cannot_escape_its_folder(filled, tmp_path):
    a, _ = filled
    out = tmp_path / "out"
    out.mkdir()
    p = run("sessions", "export", str(a), "--format", "md", "-o", str(out / ".." / ".." / "evil.md"))
    if p.returncode == 0:  # the name was sanitized into the given folder: nothing may land outside it
        written = p.stdout.strip()
        assert not (tmp_path.parent / "evil.md").exists() and written.startswith(str(tmp_path))
    else:
        assert_one_line_error(p, 2)
    assert_one_line_error(run("sessions", "export", str(a), "--format", "pdf"), 2)


def test_delete_needs_yes_and_removes_media(filled, _private_home):
    a, b = filled
    assert_one_line_error(run("sessions", "delete", str(a)), 2)
    assert (_private_home / "media" / str(a) / "shot.png").exists()
    p = run("sessions", "delete", str(a), "--yes")
    assert p.returncode == 0, p.stderr
    assert not (_private_home / "media" / str(a)).exists()
    assert [r["id"] for r in json.loads(run("sessions", "list", "--json").stdout)] == [b]
    assert_one_line_error(run("sessions", "show", str(a)), 2)


def test_damaged_library_is_reported_in_one_line_and_set_aside(_private_home):
    _private_home.mkdir(parents=True, exist_ok=True)
    (_private_home / "library.sqlite3").write_bytes(b"garbage" * 1000)
    p = run("sessions", "list")
    assert p.returncode == 0 and "no sessions yet" in p.stdout
    assert p.stderr.count("\n") == 1 and "damaged" in p.stderr and "set aside" in p.stderr
    assert any(".damaged-" in f.name for f in _private_home.iterdir())


def _ids(sid):
    return [g["id"] for g in json.loads(run("sessions", "show", str(sid), "--json").stdout)["segments"]]


def test_correct_a_transcript_and_undo_it(filled, tmp_path):
    a, b = filled
    g1, g2, g3 = _ids(a)
    p = run("sessions", "show", str(a), "--ids")
    assert p.returncode == 0 and f"#{g2} [00:04] S2: It is too small for next quarter." in p.stdout
    p = run("sessions", "edit-segment", str(a), str(g2), "It is too small for the next quarter.")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"#{g2}* [00:04] S2: It is too small for the next quarter.\n"
    assert "[00:04] S2: It is too small for [the] [next] quarter." in run("sessions", "search", "the next").stdout
    p = run("sessions", "set-speaker", str(a), str(g1), "Dana", "--following")
    assert p.returncode == 0 and p.stdout.splitlines() == [
        f"#{g1} [00:00] Dana: Let us look at the marketing budget.",
        f"#{g3} [01:05] Dana: Then we move money from travel."]
    p = run("sessions", "split", str(a), str(g2), "--at", "6.75")   # halfway: the cut goes to the nearest word
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()
    assert first == f"#{g2}* [00:04] S2: It is too small for" and second.endswith("* [00:06] S2: the next quarter.")
    p = run("sessions", "merge-segment", str(a), str(g2))
    assert p.stdout == f"#{g2}* [00:04] S2: It is too small for the next quarter.\n"
    p = run("sessions", "replace", str(a), "money", "cash")
    assert p.returncode == 0 and p.stdout == "replaced 1 time\n"
    md = run("sessions", "export", str(a), "--format", "md").stdout
    assert "**Dana** [01:05]\nThen we move cash from travel." in md and "the next quarter" in md
    for what in ("Replace", "Merge", "Split", "Segment", "Edit"):
        p = run("sessions", "undo", str(a))
        assert p.returncode == 0 and p.stdout.startswith(f"undone: {what}"), p.stdout
    assert_one_line_error(run("sessions", "undo", str(a)), 1)     # nothing left to undo
    assert "[00:04] S2: It is too small for next quarter." in run("sessions", "show", str(a)).stdout
    p = run("sessions", "redo", str(a))
    assert p.returncode == 0 and p.stdout == f"redone: Edit segment {g2}\n"


def test_correcting_the_wrong_thing_says_why_in_one_line(filled):
    a, b = filled
    g1, g2, g3 = _ids(a)
    (h1,) = _ids(b)
    for args in (("edit-segment", "999", str(g1), "x"),          # no such session
                 ("edit-segment", str(a), "999", "x"),          # no such segment
                 ("edit-segment", str(a), str(h1), "x"),        # a segment of another session
                 ("edit-segment", str(a), str(g1), "  "),       # empty text
                 ("split", str(a), str(g2), "--at", "20"),      # a time outside the segment
                 ("merge-segment", str(a), str(g1)),            # S1 then S2
                 ("merge-segment", str(a), str(g3)),            # the last one
                 ("set-speaker", str(a), str(h1), "Ana"),
                 ("replace", str(a), "", "x"),
                 ("undo", "999")):
        assert_one_line_error(run("sessions", *args), 2)
    assert "Let us look at the marketing budget." in run("sessions", "show", str(a)).stdout
