"""The library on a real SQLite file: round trips, search, migrations, damage, concurrency."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from app.library import Library, LibraryError, NotFound
from app.library import db as dbmod
from app.library.schema import LATEST, MIGRATIONS


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def test_fresh_library_is_latest_schema_in_wal_with_foreign_keys(lib):
    assert dbmod.user_version(lib.conn) == LATEST
    assert lib.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert lib.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert lib.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert lib.notice is None


def test_session_round_trip(lib):
    s = lib.create_session("Stand-up", "recording", source=None, language="en")
    assert lib.get_session(s.id) == s and s.status == "new" and s.created.endswith("Z")
    s2 = lib.update_session(s.id, title="Daily stand-up", status="ready", duration=61.5)
    assert (s2.title, s2.status, s2.duration) == ("Daily stand-up", "ready", 61.5)
    f = lib.create_session("talk.mp4", "file", source="/home/me/talk.mp4")
    assert [x.id for x in lib.sessions()] == [f.id, s.id]  # newest first
    with pytest.raises(LibraryError, match="kind"):
        lib.create_session("x", "podcast")
    with pytest.raises(LibraryError, match="status"):
        lib.update_session(s.id, status="weird")
    with pytest.raises(NotFound):
        lib.get_session(999)


def test_segments_speakers_and_duration(lib):
    s = lib.create_session("m", "file")
    lib.add_segments(s.id, [{"start": 5.0, "end": 7.0, "text": "second", "speaker": "S2"},
                            {"start": 0.5, "end": 4.0, "text": "first", "speaker": "S1", "language": "en"}])
    segs = lib.segments(s.id)
    assert [g.text for g in segs] == ["first", "second"]  # time order
    assert [g.speaker for g in segs] == ["S1", "S2"] and segs[0].language == "en"
    assert lib.get_session(s.id).duration == 7.0
    lib.rename_speaker(s.id, "S1", "Ana")
    assert lib.segments(s.id)[0].speaker == "Ana"
    assert [g.text for g in lib.segments(s.id, start=4.5)] == ["second"]
    lib.merge_speakers(s.id, "S2", "S1")
    assert [g.speaker for g in lib.segments(s.id)] == ["Ana", "Ana"]
    assert [sp.label for sp in lib.speakers(s.id)] == ["S1"]
    g = lib.update_segment(segs[0].id, text="first, corrected")
    assert g.text == "first, corrected"
    with pytest.raises(LibraryError):
        lib.add_segment(s.id, 3.0, 2.0, "backwards")
    with pytest.raises(NotFound):
        lib.rename_speaker(s.id, "S9", "x")


def test_voice_profiles(lib):
    emb = np.arange(8, dtype=np.float32)
    p = lib.add_voice_profile("Ana", emb, samples=3)
    assert np.array_equal(np.frombuffer(lib.voice_profile(p.id).embedding, np.float32), emb)
    s = lib.create_session("m", "recording")
    sp = lib.ensure_speaker(s.id, "S1")
    lib.link_speaker_profile(sp.id, p.id)
    assert lib.speaker(s.id, "S1").profile_id == p.id
    lib.update_voice_profile(p.id, samples=4)
    assert lib.voice_profiles()[0].samples == 4
    lib.delete_voice_profile(p.id)
    assert lib.speaker(s.id, "S1").profile_id is None  # ON DELETE SET NULL


def test_media_paths_are_relative_to_the_data_folder(lib):
    s = lib.create_session("m", "recording")
    shot = lib.media_dir(s.id) / "shot-0001.webp"
    shot.write_bytes(b"x" * 100)
    m = lib.add_media(s.id, shot, "screenshot", offset=12.5, width=640, height=400)
    assert m.path == f"media/{s.id}/shot-0001.webp" and m.bytes == 100
    assert lib.absolute(m) == shot
    assert lib.media(s.id, "screenshot") == [m]
    with pytest.raises(LibraryError, match="data folder"):
        lib.add_media(s.id, "/etc/passwd", "image")
    with pytest.raises(LibraryError):
        lib.add_media(s.id, "media/../../x.png", "image")


def test_summaries_action_items_chat_and_jobs(lib):
    s = lib.create_session("m", "recording")
    sm = lib.summaries.start(s.id, "general", model="gemma-4")
    lib.summaries.write(sm.id, "We agreed on the **budget**.")
    assert lib.summaries.for_session(s.id)[0].text == "We agreed on the **budget**."
    lib.summaries.finish(sm.id, "We agreed on the **budget**.",
                         action_items=[{"text": "Send the report", "owner": "Ben", "due": "2026-12-01"}])
    (a,) = lib.summaries.session_action_items(s.id)
    assert (a.summary_id, a.owner, a.due) == (sm.id, "Ben", "2026-12-01")
    assert not a.done and lib.summaries.set_action_done(a.id).done
    c = lib.add_chat_message(s.id, "user", "What was decided?", attachments=[{"media_id": 3}])
    assert lib.chat(s.id) == [c] and c.attachments == [{"media_id": 3}]
    j = lib.jobs.create("transcribe", s.id, resume={"done_until": 0})
    assert j.state == "queued"
    j = lib.jobs.update(j.id, state="running", progress=0.4, resume={"done_until": 12.0})
    assert j.started and j.resume == {"done_until": 12.0} and j.progress == 0.4
    assert [x.id for x in lib.jobs.mark_interrupted()] == [j.id]
    assert lib.jobs.get(j.id).state == "interrupted"
    with pytest.raises(LibraryError):
        lib.jobs.update(j.id, state="exploded")


def test_delete_session_removes_everything_and_its_media(lib):
    s = lib.create_session("m", "recording")
    lib.add_segment(s.id, 0, 1, "hello there", "S1")
    lib.summaries.finish(lib.summaries.start(s.id, "general").id, "hello summary")
    (lib.media_dir(s.id) / "a.png").write_bytes(b"png")
    lib.add_media(s.id, lib.media_dir(s.id) / "a.png", "screenshot")
    lib.jobs.create("transcribe", s.id)
    keep = lib.create_session("other", "file")
    lib.add_segment(keep.id, 0, 1, "hello again")
    lib.delete_session(s.id)
    for table in ("segments", "speakers", "summaries", "media", "jobs"):
        n = lib.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE session_id = ?", (s.id,)).fetchone()[0]
        assert n == 0, table
    assert not lib.media_dir(s.id, create=False).exists()
    assert [h.session_id for h in lib.search("hello")] == [keep.id]


def test_search_follows_inserts_updates_and_deletes(lib):
    a = lib.create_session("Quarterly review", "recording")
    b = lib.create_session("Hiring sync", "recording")
    g1 = lib.add_segment(a.id, 61.0, 64.0, "the marketing budget is too small", "S1")
    lib.add_segment(b.id, 5.0, 8.0, "we hire two engineers", "S2")
    lib.rename_speaker(a.id, "S1", "Ana")
    hits = lib.search("budget")
    assert [(h.session_id, h.source, h.offset, h.speaker) for h in hits] == [(a.id, "segment", 61.0, "Ana")]
    assert hits[0].snippet == "the marketing [budget] is too small"
    assert lib.search("budg")[0].segment_id == g1.id  # prefix of the last word, as you type
    assert lib.search("engineers two")[0].session_id == b.id  # all words, any order
    lib.update_segment(g1.id, text="the marketing plan is fine")
    assert lib.search("budget") == []
    assert lib.search("plan")[0].segment_id == g1.id
    lib.update_session(b.id, title="Budget hiring sync")
    t = lib.search("budget")
    assert [(h.session_id, h.source) for h in t] == [(b.id, "title")]
    assert t[0].snippet == "[Budget] hiring sync"
    sm = lib.summaries.finish(lib.summaries.start(a.id, "general").id, "Decision: freeze the travel budget.")
    assert {(h.session_id, h.source) for h in lib.search("budget")} == {(b.id, "title"), (a.id, "summary")}
    lib.conn.execute("DELETE FROM summaries WHERE id = ?", (sm.id,))
    assert {h.source for h in lib.search("travel")} == set()
    assert lib.search("résumé") == [] and lib.search('"; DROP TABLE x; --') == []
    lib.add_segment(a.id, 70, 72, "Le résumé de la réunion")
    assert lib.search("resume")[0].offset == 70  # diacritics folded
    assert lib.search("sync", highlight=("<b>", "</b>"))[0].snippet == "Budget hiring <b>sync</b>"
    assert lib.search("plan", session_id=b.id) == []


def _write_v1_library(path):
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.executescript(f"BEGIN; {MIGRATIONS[0][1]}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("INSERT INTO sessions (id, title, created, kind) VALUES (1, 'Old budget talk', "
                 "'2025-01-02T10:00:00Z', 'recording')")
    conn.execute("INSERT INTO speakers (id, session_id, label, name) VALUES (1, 1, 'S1', 'Ana')")
    conn.execute("""INSERT INTO segments (session_id, start, "end", speaker_id, text)
                    VALUES (1, 0, 3, 1, 'the budget for next year')""")
    conn.close()


def test_migrates_a_library_written_by_an_older_schema(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_v1_library(data / "library.sqlite3")
    with Library.open(data) as lib:
        assert dbmod.user_version(lib.conn) == LATEST
        assert lib.get_session(1).title == "Old budget talk"
        assert lib.segments(1)[0].speaker == "Ana"
        hits = lib.search("budget")  # old rows were indexed by the migration
        assert {h.source for h in hits} == {"title", "segment"}
        lib.summaries.finish(lib.summaries.start(1, "general").id, "now summaries exist")
    backups = list(data.glob("library.sqlite3.bak-v1-*"))
    assert len(backups) == 1
    old = sqlite3.connect(str(backups[0]))
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT title FROM sessions").fetchone()[0] == "Old budget talk"


def test_failed_migration_rolls_back_and_keeps_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "library.sqlite3"
    _write_v1_library(path)
    bad = MIGRATIONS + [(LATEST + 1, "CREATE TABLE later (x); INSERT INTO nonexistent VALUES (1);")]
    conn = dbmod.connect(path)
    with pytest.raises(LibraryError, match=f"v{LATEST + 1} failed.*left unchanged at v{LATEST}"):
        dbmod.migrate(conn, path, bad)
    # steps 2..LATEST went through; the failing one left no trace
    assert dbmod.user_version(conn) == LATEST
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'later'").fetchone() is None
    assert conn.execute("SELECT title FROM sessions").fetchone()[0] == "Old budget talk"
    conn.close()
    assert list(data.glob("library.sqlite3.bak-v1-*"))


def test_newer_schema_is_refused_untouched(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(str(data / "library.sqlite3"))
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(LibraryError, match="newer Minutely"):
        Library.open(data)


@pytest.mark.parametrize("damage", ["garbage", "corrupt_pages"])
def test_damaged_library_is_moved_aside_and_a_fresh_one_opened(tmp_path, damage):
    data = tmp_path / "data"
    with Library.open(data) as lib:
        s = lib.create_session("precious", "recording")
        lib.add_segments(s.id, [{"start": i, "end": i + 1, "text": f"line {i} " * 20} for i in range(300)])
        lib.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = data / "library.sqlite3"
    raw = bytearray(path.read_bytes())
    original = bytes(raw)
    if damage == "garbage":
        raw[:100] = b"this is not a database at all" + bytes(71)
    else:  # scribble over b-tree pages past the header
        for off in range(4096 * 3, len(raw), 4096 * 2):
            raw[off:off + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    with Library.open(data) as lib:
        assert lib.notice and lib.notice.startswith("The library was damaged") and "\n" not in lib.notice
        assert lib.sessions() == []
        lib.create_session("new", "recording")
    aside = [p for p in data.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() != original and len(aside[0].read_bytes()) == len(raw)


def test_writer_and_reader_threads_never_block_long_or_see_half_a_write(tmp_path):
    lib = Library.open(tmp_path / "data")
    s = lib.create_session("live", "recording")
    sid, n_batches = s.id, 150
    errors: list[str] = []
    waits: list[float] = []
    done = threading.Event()

    def writer():
        w = lib.connect()
        try:
            for i in range(n_batches):
                # an utterance: its segment(s) and the session's duration, in one transaction
                w.add_segments(sid, [{"start": i, "end": i + 0.5, "text": f"part a {i}", "speaker": "S1"},
                                     {"start": i + 0.5, "end": i + 1.0, "text": f"part b {i}", "speaker": "S2"}])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))
        finally:
            w.close()
            done.set()

    def reader():
        r = lib.connect()
        try:
            while not done.is_set():
                t = time.perf_counter()
                detail = r.session_detail(sid)
                waits.append(time.perf_counter() - t)
                n = len(detail.segments)
                if n % 2:
                    errors.append(f"saw half an utterance ({n} segments)")
                if n and detail.session.duration != detail.segments[-1].end:
                    errors.append(f"duration {detail.session.duration} vs segments up to {detail.segments[-1].end}")
        finally:
            r.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(lib.segments(sid)) == 2 * n_batches
    assert len(waits) > 5 and max(waits) < 0.5  # reads are never stuck behind the writer
    lib.close()


def test_overlap_marks_follow_their_speaker_and_their_session(lib):
    """Marks of a second voice are kept beside the segments: replaced as a whole, named by their
    speaker, moved when that speaker is merged (directly or as an undoable edit), gone with the
    session, and shown in the session's detail (what exports read)."""
    s = lib.create_session("Standup", "file")
    lib.add_segments(s.id, [{"start": 0.0, "end": 4.0, "text": "a", "speaker": "S1"},
                            {"start": 4.0, "end": 8.0, "text": "b", "speaker": "S2"},
                            {"start": 8.0, "end": 9.0, "text": "c", "speaker": "S3"}])
    s2, s3 = lib.speaker(s.id, "S2"), lib.speaker(s.id, "S3")
    assert lib.set_overlaps(s.id, [(3.0, 4.0, s2.id), (5.0, 5.0, s3.id), (6.0, 6.5, s3.id)]) == 2
    lib.rename_speaker(s.id, "S2", "Ana")
    assert [(o.start, o.end, o.speaker) for o in lib.overlaps(s.id)] == [(3.0, 4.0, "Ana"), (6.0, 6.5, "S3")]
    from app.library.export import render

    md, txt = render(lib.session_detail(s.id), "md"), render(lib.session_detail(s.id), "txt")
    assert "a *(Ana talking over)*" in md and "b *(S3 talking over)*" in md
    assert "S1: a (Ana talking over)" in txt and "Ana: b (S3 talking over)" in txt and "c (" not in txt
    lib.edits.merge_speakers(s.id, "S3", "S1")
    assert [o.speaker for o in lib.overlaps(s.id)] == ["Ana", "S1"]
    lib.merge_speakers(s.id, "S2", "S1")
    assert [o.speaker for o in lib.overlaps(s.id)] == ["S1", "S1"]
    assert [(o.start, o.speaker) for o in lib.session_detail(s.id).overlaps] == [(3.0, "S1"), (6.0, "S1")]
    assert lib.session_detail(s.id).to_dict()["overlaps"][0]["end"] == 4.0
    lib.set_overlaps(s.id, [(1.0, 2.0, None)])
    assert [(o.start, o.speaker) for o in lib.overlaps(s.id)] == [(1.0, None)]
    lib.set_overlaps(s.id, [(7.0, 7.5, None)], after=5.0)   # a continued part's
    lib.set_overlaps(s.id, [(8.0, 8.5, None)], after=5.0)                       # marks: replaced again
    assert [o.start for o in lib.overlaps(s.id)] == [1.0, 8.0]                  # the first part's stay
    lib.delete_session(s.id)
    assert lib.conn.execute("SELECT count(*) FROM overlaps").fetchone()[0] == 0
