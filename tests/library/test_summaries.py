"""Schema v4 and the Library's summary methods, on a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from app.library import Library, LibraryError, NotFound
from app.library import db as dbmod
from app.library.schema import MIGRATIONS


def _old_library(path, version):
    conn = sqlite3.connect(path, isolation_level=None)
    for v, sql in MIGRATIONS:
        if v <= version:
            conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {v}; COMMIT;")
    return conn


def test_v3_library_gains_summary_states_and_points_and_keeps_old_summaries(tmp_path):
    conn = _old_library(tmp_path / dbmod.DB_NAME, 3)
    conn.execute("INSERT INTO sessions (id, title, created, kind) VALUES (1, 'Old', '2025-01-01T00:00:00Z', 'file')")
    conn.execute("INSERT INTO summaries (id, session_id, template, text, created) "
                 "VALUES (1, 1, 'general', 'An old summary about the budget', '2025-01-01T00:00:00Z')")
    conn.execute("INSERT INTO action_items (session_id, summary_id, text) VALUES (1, 1, 'Send the deck')")
    conn.close()
    with Library.open(tmp_path) as lib:
        assert dbmod.user_version(lib.conn) == MIGRATIONS[-1][0]  # every later step too
        (old,) = lib.summaries.for_session(1)
        assert old.status == "done" and old.text == "An old summary about the budget"
        assert [a.text for a in lib.summaries.action_items(1)] == ["Send the deck"]
        assert lib.summaries.points(1) == []
        assert lib.search("budget")[0].source == "summary"  # still searchable
    assert list(tmp_path.glob(f"{dbmod.DB_NAME}.bak-v3-*"))  # backed up before migrating


def test_summary_lifecycle_with_structured_rows(tmp_path):
    with Library.open(tmp_path) as lib:
        s = lib.create_session("Weekly", "file")
        first = lib.summaries.start(s.id, "general", model="tiny.gguf")
        assert first.status == "writing" and first.text == ""
        lib.summaries.write(first.id, "## Overview\nWe met")
        other = Library.open(tmp_path)  # another connection sees the text as it streams
        assert other.summaries.get(first.id).text == "## Overview\nWe met"
        done = lib.summaries.finish(first.id, "## Overview\nWe met and decided.",
                                  action_items=[{"text": " Send  the deck ", "owner": "Ana", "due": ""},
                                                {"text": "", "owner": "nobody"}],
                                  decisions=["Keep the budget", "  "], questions=["Who pays?"])
        assert done.status == "done" and other.summaries.get(first.id).status == "done"
        (item,) = lib.summaries.action_items(first.id)
        assert (item.text, item.owner, item.due, item.done) == ("Send the deck", "Ana", None, False)
        assert [p.text for p in lib.summaries.decisions(first.id)] == ["Keep the budget"]
        assert [p.text for p in lib.summaries.open_questions(first.id)] == ["Who pays?"]

        second = lib.summaries.start(s.id, "standup")  # regenerating keeps the first
        lib.summaries.finish(second.id, "short", decisions=["Ship it"])
        assert [x.id for x in lib.summaries.for_session(s.id)] == [first.id, second.id]
        assert lib.summaries.latest(s.id).id == second.id
        assert lib.summaries.latest(s.id, "general").id == first.id
        assert [p.text for p in lib.summaries.decisions(first.id)] == ["Keep the budget"]

        lib.summaries.delete(first.id)
        assert lib.summaries.action_items(first.id) == [] and lib.summaries.points(first.id) == []
        with pytest.raises(NotFound):
            lib.summaries.get(first.id)
        with pytest.raises(LibraryError):
            lib.summaries.write(second.id, "x", status="bogus")
        lib.delete_session(s.id)
        assert other.conn.execute("SELECT COUNT(*) FROM summary_points").fetchone()[0] == 0
        other.close()


def test_summaries_left_writing_by_a_dead_process_are_marked_failed(tmp_path):
    with Library.open(tmp_path) as lib:
        s = lib.create_session("Weekly", "file")
        a = lib.summaries.start(s.id, "general")
        lib.summaries.write(a.id, "half written")
        b = lib.summaries.start(s.id, "general")
        lib.summaries.finish(b.id, "complete")
    with Library.open(tmp_path) as lib:
        assert lib.summaries.mark_unfinished() == [a.id]
        assert lib.summaries.get(a.id).status == "failed" and lib.summaries.get(a.id).text == "half written"
        assert lib.summaries.get(b.id).status == "done"
