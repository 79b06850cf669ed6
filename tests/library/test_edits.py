"""Correcting a transcript on a real library file: words, replace, speakers, split, merge, undo."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from app.library import Library, LibraryError, NotFound
from app.library import db as dbmod
from app.library.edits import word_cut
from app.library.export import render
from app.library.schema import LATEST, MIGRATIONS


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def emb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=12).astype("<f4")


@pytest.fixture
def meeting(lib):
    s = lib.create_session("Budget review", "recording")
    ids = lib.add_segments(s.id, [
        {"start": 0.0, "end": 4.0, "text": "Let us look at the marketing budjet.", "speaker": "S1",
         "embedding": emb(1)},
        {"start": 4.0, "end": 10.0, "text": "The budjet is too small, um, for Q3.", "speaker": "S2",
         "embedding": emb(2)},
        {"start": 10.0, "end": 12.0, "text": "Budjets always are.", "speaker": "S1", "embedding": emb(3)},
        {"start": 12.0, "end": 15.0, "text": "Then we move money from travel.", "speaker": "S1", "embedding": emb(4)}])
    other = lib.create_session("Other", "recording")
    lib.add_segment(other.id, 0.0, 1.0, "the budjet of another team", "S1")
    return s.id, ids, other.id


def texts(lib, sid):
    return [g.text for g in lib.segments(sid)]


def test_edit_segment_keeps_the_models_words_and_search_follows_at_once(lib, meeting):
    sid, ids, _ = meeting
    g = lib.edits.edit_segment(ids[0], "  Let us look at the marketing budget.  ")
    assert (g.text, g.edited, g.original_text) == ("Let us look at the marketing budget.", True,
                                                   "Let us look at the marketing budjet.")
    hits = lib.search("budget", session_id=sid)
    assert [h.segment_id for h in hits] == [ids[0]]
    assert ids[0] not in [h.segment_id for h in lib.search("budjet")]
    # a second edit keeps the model's words, not the first edit's
    g = lib.edits.edit_segment(ids[0], "Let us look at the budget.")
    assert g.original_text == "Let us look at the marketing budjet."
    # back to the model's words: nothing to restore any more, still protected
    g = lib.edits.edit_segment(ids[0], "Let us look at the marketing budjet.")
    assert g.original_text is None and g.edited
    lib.edits.edit_segment(ids[1], "The budget is too small for Q3.")
    g = lib.edits.restore_segment(ids[1])
    assert g.text == "The budjet is too small, um, for Q3." and g.original_text is None
    assert lib.search("um", session_id=sid)[0].segment_id == ids[1]
    with pytest.raises(LibraryError, match="already has the model's words"):
        lib.edits.restore_segment(ids[1])
    with pytest.raises(LibraryError, match="empty"):
        lib.edits.edit_segment(ids[1], "   ")
    with pytest.raises(NotFound):
        lib.edits.edit_segment(99999, "x")
    assert not lib.segment(ids[2]).edited and lib.segment(ids[2]).original_text is None


def test_replace_in_session_is_one_step_and_stays_in_its_session(lib, meeting):
    sid, ids, other = meeting
    assert lib.edits.replace_in_session(sid, "budjet", "budget") == 2   # whole words, any case
    assert texts(lib, sid)[:3] == ["Let us look at the marketing budget.", "The budget is too small, um, for Q3.",
                                   "Budjets always are."]
    assert [g.edited for g in lib.segments(sid)] == [True, True, False, False]
    assert lib.segments(other)[0].text == "the budjet of another team"
    assert lib.edits.replace_in_session(sid, "budjet", "budget", whole_word=False) == 1
    assert texts(lib, sid)[2] == "budgets always are."  # case=False: the match, whatever its case, is replaced
    assert lib.edits.replace_in_session(sid, "The", "the", case=True) == 1
    assert lib.edits.replace_in_session(sid, ", um,", "") == 1
    assert texts(lib, sid)[1] == "the budget is too small for Q3."
    assert lib.edits.replace_in_session(sid, "zebra", "x") == 0
    assert {h.segment_id for h in lib.search("budget", session_id=sid)} == set(ids[:3])
    with pytest.raises(LibraryError, match="empty"):
        lib.edits.replace_in_session(sid, "budgets always are.", "", whole_word=False)
    with pytest.raises(LibraryError):
        lib.edits.replace_in_session(sid, " ", "x")
    with pytest.raises(NotFound):
        lib.edits.replace_in_session(999, "a", "b")
    for _ in range(4):      # four replacements, four undo steps: back to the model's words
        assert lib.edits.undo(sid).startswith("Replace")
    assert texts(lib, sid)[:3] == ["Let us look at the marketing budjet.", "The budjet is too small, um, for Q3.",
                                   "Budjets always are."]
    assert lib.search("budget", session_id=sid) == []


def test_set_speaker_by_label_name_or_a_new_name(lib, meeting):
    sid, ids, _ = meeting
    lib.rename_speaker(sid, "S2", "Ben")
    assert lib.edits.set_segment_speaker(ids[2], "ben") == [ids[2]]     # a name, any case
    assert lib.segment(ids[2]).speaker == "Ben" and lib.segment(ids[2]).speaker_set
    assert lib.edits.set_segment_speaker(ids[2], "S1") == [ids[2]]      # a label
    # a new name makes a speaker; following: that segment and S1's later ones, not S2's
    changed = lib.edits.set_segment_speaker(ids[2], "Dana", following=True)
    assert changed == [ids[2], ids[3]]
    assert [g.speaker for g in lib.segments(sid)] == ["S1", "Ben", "Dana", "Dana"]
    dana = lib.speaker(sid, "U1")
    assert dana.name == "Dana"
    assert lib.search("travel", session_id=sid)[0].speaker == "Dana"
    # the only segment of S1 moves too: S1 is gone, and comes back with undo
    lib.edits.set_segment_speaker(ids[0], "Dana")
    assert [sp.label for sp in lib.speakers(sid)] == ["S2", "U1"]
    lib.edits.undo(sid)
    assert [sp.label for sp in lib.speakers(sid)] == ["S1", "S2", "U1"] and lib.segment(ids[0]).speaker == "S1"
    lib.edits.undo(sid)
    assert [g.speaker for g in lib.segments(sid)] == ["S1", "Ben", "S1", "S1"]
    assert [sp.label for sp in lib.speakers(sid)] == ["S1", "S2"]   # Dana was new: gone again
    lib.edits.redo(sid)
    assert [g.speaker for g in lib.segments(sid)] == ["S1", "Ben", "Dana", "Dana"]
    with pytest.raises(LibraryError):
        lib.edits.set_segment_speaker(ids[0], "  ")


def test_split_keeps_words_time_speaker_and_voice(lib, meeting):
    sid, ids, _ = meeting
    text = "The budjet is too small, um, for Q3."
    cut = text.index("um")
    a, b = lib.edits.split_segment(ids[1], cut)
    assert (a.text, b.text) == ("The budjet is too small,", "um, for Q3.")
    assert a.start == 4.0 and b.end == 10.0 and a.end == b.start == pytest.approx(4.0 + 6.0 * cut / len(text))
    assert a.speaker == b.speaker == "S2" and a.edited and b.edited
    stored = dict((r[0], r[3]) for r in lib.segment_embeddings(sid))
    assert stored[a.id] == stored[b.id] == emb(2).tobytes()
    assert lib.search("um", session_id=sid)[0].segment_id == b.id
    assert len(lib.segments(sid)) == 5 and lib.get_session(sid).duration == 15.0
    a2, b2 = lib.edits.split_segment(b.id, 4, at_seconds=9.5)
    assert (a2.end, b2.start, b2.text) == (9.5, 9.5, "for Q3.")
    for bad in (0, len("for Q3."), 100):
        with pytest.raises(LibraryError, match="inside the text"):
            lib.edits.split_segment(b2.id, bad)
    with pytest.raises(LibraryError, match="outside segment"):
        lib.edits.split_segment(a.id, 4, at_seconds=3.0)
    # the model's words of an edited segment are cut too
    lib.edits.edit_segment(ids[3], "Then we move the money from travel.")
    c, d = lib.edits.split_segment(ids[3], len("Then we move the money"))
    assert (c.original_text, d.original_text) == ("Then we move money", None)  # d's words are the model's
    assert word_cut("one two three four", 0.5) == 8 and word_cut("single", 0.5) is None
    assert word_cut("one two", 0.0) == 4   # never before the first word


def test_merge_with_next_joins_words_and_time_within_one_speaker(lib, meeting):
    sid, ids, _ = meeting
    with pytest.raises(LibraryError, match="give them one speaker first"):
        lib.edits.merge_with_next(ids[0])    # S1 then S2
    g = lib.edits.merge_with_next(ids[2])
    assert (g.text, g.start, g.end, g.speaker) == ("Budjets always are. Then we move money from travel.",
                                                  10.0, 15.0, "S1")
    assert g.edited and len(lib.segments(sid)) == 3
    with pytest.raises(NotFound):
        lib.segment(ids[3])
    assert dict((r[0], r[3]) for r in lib.segment_embeddings(sid))[g.id] == emb(4).tobytes()  # the longer one's
    assert lib.search("travel", session_id=sid)[0].segment_id == g.id
    with pytest.raises(LibraryError, match="last of its session"):
        lib.edits.merge_with_next(g.id)
    lib.edits.undo(sid)
    assert texts(lib, sid)[2:] == ["Budjets always are.", "Then we move money from travel."]
    assert lib.segment(ids[3]).start == 12.0 and not lib.segment(ids[2]).edited
    assert lib.search("travel", session_id=sid)[0].segment_id == ids[3]


def test_undo_and_redo_cover_every_operation_and_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    with Library.open(data) as lib:
        s = lib.create_session("m", "recording")
        ids = lib.add_segments(s.id, [
            {"start": 0.0, "end": 4.0, "text": "one two three four", "speaker": "S1"},
            {"start": 4.0, "end": 6.0, "text": "five six", "speaker": "S1"}])
        assert lib.edits.undo_redo(s.id) == (None, None) and lib.edits.undo(s.id) is None
        start = [(g.id, g.start, g.end, g.text, g.speaker, g.edited) for g in lib.segments(s.id)]
        lib.edits.edit_segment(ids[0], "one 2 three four")
        lib.edits.replace_in_session(s.id, "six", "6")
        lib.edits.set_segment_speaker(ids[1], "Ana")
        lib.edits.split_segment(ids[0], 6)
        lib.edits.merge_with_next(ids[0])
        done = [(g.id, g.start, g.end, g.text, g.speaker, g.edited) for g in lib.segments(s.id)]
        assert lib.edits.undo_redo(s.id) == (f"Merge segments {ids[0]} and {ids[0] + 2}", None)
    with Library.open(data) as lib:      # a restart: the history is in the file
        labels = [lib.edits.undo(s.id) for _ in range(5)]
        assert [x.split()[0] for x in labels] == ["Merge", "Split", "Segment", "Replace", "Edit"]
        assert lib.edits.undo(s.id) is None
        assert [(g.id, g.start, g.end, g.text, g.speaker, g.edited) for g in lib.segments(s.id)] == start
        assert [sp.label for sp in lib.speakers(s.id)] == ["S1"]
        assert lib.search("2", session_id=s.id) == []
    with Library.open(data) as lib:
        for _ in range(5):
            assert lib.edits.redo(s.id)
        assert lib.edits.redo(s.id) is None
        assert [(g.id, g.start, g.end, g.text, g.speaker, g.edited) for g in lib.segments(s.id)] == done
        # a new change after an undo forgets what was undone
        lib.edits.undo(s.id)
        lib.edits.edit_segment(ids[1], "five 6!")
        assert lib.edits.undo_redo(s.id) == (f"Edit segment {ids[1]}", None)
        lib.delete_session(s.id)
        assert lib.conn.execute("SELECT count(*) FROM segment_history").fetchone()[0] == 0


def test_undo_leaves_what_diarization_changed_in_between(lib, meeting):
    sid, ids, _ = meeting
    lib.edits.edit_segment(ids[1], "The budget is too small for Q3.")
    lib.assign_speakers(sid, {ids[1]: "S1"})         # a later diarization moves the segment
    lib.edits.undo(sid)
    g = lib.segment(ids[1])
    assert g.text == "The budjet is too small, um, for Q3." and g.speaker == "S1"


def test_each_session_keeps_its_newest_entries(lib, meeting, monkeypatch):
    from app.library import edits

    monkeypatch.setattr(edits, "HISTORY_LIMIT", 3)
    sid, ids, _ = meeting
    for n in range(5):
        lib.edits.edit_segment(ids[0], f"version {n}")
    assert [lib.edits.undo(sid) for _ in range(4)][3] is None
    assert lib.segment(ids[0]).text == "version 1"


def test_undo_brings_back_no_segment_removed_since(lib, meeting):
    sid, ids, _ = meeting
    lib.edits.edit_segment(ids[1], "The budget is too small for Q3.")
    lib.delete_segments(sid, keep_edited=False)       # the session is transcribed again from scratch
    assert lib.edits.undo(sid) and lib.segments(sid) == []


def test_diarization_and_retranscription_keep_what_the_user_corrected(lib, meeting):
    from app.pipeline.speakers import diarize_session

    sid, ids, _ = meeting
    lib.edits.set_segment_speaker(ids[3], "Dana")
    lib.edits.set_segment_speaker(ids[0], "S2")
    lib.edits.edit_segment(ids[2], "Budgets always are.")
    for _ in range(2):
        n = diarize_session(lib, sid, 2)
        assert n == 2
        segs = {g.id: g for g in lib.segments(sid)}
        assert segs[ids[3]].speaker == "Dana" and segs[ids[0]].speaker_id == lib.speaker(sid, "S2").id
        assert segs[ids[2]].text == "Budgets always are."
    lib.assign_speakers(sid, {i: "S1" for i in ids})
    assert [g.speaker for g in lib.segments(sid)] == ["S2", "S1", "S1", "Dana"]
    # what a re-transcription removes before storing new text: never the corrected segments
    assert lib.delete_segments(sid) == 1
    assert [g.id for g in lib.segments(sid)] == [ids[0], ids[2], ids[3]]


def test_exports_show_the_corrections(lib, meeting):
    sid, ids, _ = meeting
    lib.edits.replace_in_session(sid, "budjet", "budget")
    lib.edits.set_segment_speaker(ids[3], "Dana")
    lib.rename_speaker(sid, "S2", "Ben")
    lib.edits.split_segment(ids[1], len("The budget is too small,"), at_seconds=7.0)
    d = lib.session_detail(sid)
    md = render(d, "md")
    assert "marketing budget" in md and "budjet" not in md.replace("Budjets", "")
    assert "**Dana** [00:12]\nThen we move money from travel." in md
    srt = render(d, "srt")
    assert "00:00:04,000 --> 00:00:07,000\nBen: The budget is too small," in srt
    assert "00:00:07,000 --> 00:00:10,000\nBen: um, for Q3." in srt
    js = render(d, "json")
    assert '"original_text": "Let us look at the marketing budjet."' in js and '"edited": true' in js


def test_a_version_4_library_gains_editing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(str(data / "library.sqlite3"), isolation_level=None)
    for version, sql in MIGRATIONS[:4]:
        conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;")
    conn.execute("INSERT INTO sessions (id, title, created, kind) VALUES (1, 'Old', '2025-01-02T10:00:00Z', "
                 "'recording')")
    conn.execute("INSERT INTO speakers (id, session_id, label) VALUES (1, 1, 'S1')")
    conn.execute("""INSERT INTO segments (session_id, start, "end", speaker_id, text)
                    VALUES (1, 0, 3, 1, 'the budjet for next year')""")
    conn.close()
    with Library.open(data) as lib:
        assert dbmod.user_version(lib.conn) == LATEST  # every later step too
        g = lib.segments(1)[0]
        assert (g.edited, g.original_text, g.speaker_set) == (False, None, False)
        lib.edits.edit_segment(g.id, "the budget for next year")
        assert lib.search("budget")[0].segment_id == g.id and lib.search("budjet") == []
        assert lib.edits.undo(1) and lib.search("budjet")[0].segment_id == g.id
    assert list(data.glob("library.sqlite3.bak-v4-*"))


def test_speaker_rename_and_merge_are_undoable(lib, meeting):
    sid, ids, other = meeting
    before = [(g.id, g.speaker_id, g.speaker) for g in lib.segments(sid)]
    sp = lib.edits.rename_speaker(sid, "S2", "Ben")
    assert sp.name == "Ben" and lib.segments(sid)[1].speaker == "Ben"
    assert lib.edits.undo_redo(sid)[0] == "Rename S2 → Ben"
    # merging S2 (Ben) into S1: every segment is S1's, S2 is gone
    s1 = lib.edits.merge_speakers(sid, "S2", "S1")
    assert {g.speaker_id for g in lib.segments(sid)} == {s1.id}
    assert [s.label for s in lib.speakers(sid)] == ["S1"]
    with pytest.raises(LibraryError, match="into itself"):
        lib.edits.merge_speakers(sid, "S1", "S1")
    with pytest.raises(NotFound):
        lib.edits.rename_speaker(sid, "S9", "Nobody")
    # undo the merge: S2 comes back with its name and its segments
    assert lib.edits.undo(sid) == "Merge Ben into S1"
    assert [(g.id, g.speaker) for g in lib.segments(sid)][1] == (ids[1], "Ben")
    assert [s.label for s in lib.speakers(sid)] == ["S1", "S2"]
    assert lib.edits.undo(sid) == "Rename S2 → Ben"
    assert [(g.id, g.speaker_id, g.speaker) for g in lib.segments(sid)] == before
    assert lib.speaker(sid, "S2").name is None
    assert lib.edits.redo(sid) == "Rename S2 → Ben" and lib.speaker(sid, "S2").name == "Ben"
    # the other session is untouched, and a rename back to no name is one more step
    assert lib.segments(other)[0].speaker == "S1"
    lib.edits.rename_speaker(sid, "S2", "")
    assert lib.speaker(sid, "S2").name is None and lib.edits.undo_redo(sid)[0] == "Rename Ben → S2"


def test_saving_a_voice_names_the_speaker_undoably(lib, meeting):
    from app.pipeline.speakers import save_voice

    sid, _, _ = meeting
    lib.set_speaker_voice(lib.speaker(sid, "S1").id, emb(9))
    pid = save_voice(lib, sid, "S1", "Ana")
    assert (lib.speaker(sid, "S1").name, lib.speaker(sid, "S1").profile_id) == ("Ana", pid)
    lib.edits.undo(sid)
    assert (lib.speaker(sid, "S1").name, lib.speaker(sid, "S1").profile_id) == (None, None)
    assert [p.name for p in lib.voice_profiles()] == ["Ana"]   # the saved voice stays saved
    with pytest.raises(ValueError, match="no voice data"):   # nothing changes then
        save_voice(lib, sid, "S2", "Ben")
    assert lib.speaker(sid, "S2").name is None


def test_move_split_moves_the_boundary_inside_the_two_halves_only(lib, meeting):
    sid, ids, _ = meeting
    a, b = lib.edits.split_segment(ids[1], lib.segment(ids[1]).text.index("um"))
    cut = a.end
    a2, b2 = lib.edits.move_split(a.id, 5.0)
    assert (a2.start, a2.end, b2.start, b2.end) == (4.0, 5.0, 5.0, 10.0) and a2.edited and b2.edited
    assert (a2.text, b2.text) == (a.text, b.text)
    for bad in (4.0, 10.0, 3.0, 11.5):   # on or outside the two segments' ends
        with pytest.raises(LibraryError, match=r"outside segments .* \(4\.00s to 10\.00s\)"):
            lib.edits.move_split(a.id, bad)
    with pytest.raises(LibraryError, match="do not meet"):
        lib.edits.move_split(ids[3], 13.0)   # the last segment
    lib.edits.undo(sid)
    assert (lib.segment(a.id).end, lib.segment(b.id).start) == (cut, cut)
    lib.edits.redo(sid)
    assert (lib.segment(a.id).end, lib.segment(b.id).start) == (5.0, 5.0)


def test_a_version_6_history_moves_into_rows_and_stays_undoable(tmp_path):
    """Entries written by step 5's history (JSON: one line per row, or earlier one object;
    embeddings in base64) are moved into the history's rows by step 7 and undo and redo as before."""
    import base64

    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(str(data / "library.sqlite3"), isolation_level=None)
    for version, sql in MIGRATIONS[:6]:
        conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;")
    e1, e2, e3 = (emb(i).tobytes() for i in (1, 2, 3))
    conn.execute("INSERT INTO sessions (id, title, created, kind) VALUES (1, 'Old', '2025-01-02T10:00:00Z', 'file')")
    segs = {1: dict(session_id=1, start=0.0, end=3.25, speaker_id=1, text="the budjet for next year",
                    language="en", embedding=e1, edited=0, original_text=None, speaker_set=0),
            2: dict(session_id=1, start=3.25, end=6.1, speaker_id=2, text="budjet talk, part two",
                    language="en", embedding=e2, edited=0, original_text=None, speaker_set=0)}
    sps = {1: dict(session_id=1, label="S1", name=None, profile_id=None, embedding=None),
           2: dict(session_id=1, label="S2", name=None, profile_id=None, embedding=e3)}
    start = json.dumps([[r["start"], r["text"]] for r in segs.values()])

    def js(r):
        return None if r is None else {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                                       for k, v in r.items()}

    def lines(rows):   # step 5's later format
        return "\n".join(json.dumps([t, i, js(r)]) for t, byid in rows.items() for i, r in byid.items())

    def whole(rows):   # its first format
        return json.dumps({t: [[i, js(r)] for i, r in byid.items()] for t, byid in rows.items()})

    entries = []
    edited = dict(segs[1], text="the budget for next year", original_text=segs[1]["text"], edited=1)
    entries.append(("edit", "Edit segment 1", whole({"segments": {1: segs[1]}}), whole({"segments": {1: edited}})))
    left = dict(segs[2], end=4.5, text="budjet talk,", edited=1)
    right = dict(segs[2], start=4.5, text="part two", edited=1)
    entries.append(("split", "Split segment 2", lines({"segments": {2: segs[2], 3: None}}),
                    lines({"segments": {2: left, 3: right}})))
    named = dict(sps[2], name="Ben")
    entries.append(("rename", "Rename S2 → Ben", lines({"speakers": {2: sps[2]}}), lines({"speakers": {2: named}})))
    for i, r in sps.items():
        conn.execute("INSERT INTO speakers (id, session_id, label, name, profile_id, embedding) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (i, *named.values()) if i == 2 else (i, *r.values()))
    for i, r in {1: edited, 2: left, 3: right}.items():
        conn.execute('INSERT INTO segments (id, session_id, start, "end", speaker_id, text, language, embedding, '
                     "edited, original_text, speaker_set) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (i, *r.values()))
    for op, label, before, after in entries:
        conn.execute("INSERT INTO segment_history (session_id, op, label, before, after, created) "
                     "VALUES (1, ?, ?, ?, ?, '2025-01-02T10:00:00Z')", (op, label, before, after))
    conn.close()
    with Library.open(data) as lib:
        assert dbmod.user_version(lib.conn) == LATEST
        cols = [r[1] for r in lib.conn.execute("PRAGMA table_info(segment_history)")]
        assert "before" not in cols and "after" not in cols
        assert lib.edits.undo_redo(1) == ("Rename S2 → Ben", None)
        assert lib.edits.undo(1) == "Rename S2 → Ben" and lib.speaker(1, "S2").name is None
        assert lib.edits.undo(1) == "Split segment 2"
        assert [(g.id, g.end, g.text) for g in lib.segments(1)] == [(1, 3.25, edited["text"]),
                                                                     (2, 6.1, segs[2]["text"])]
        assert lib.edits.undo(1) == "Edit segment 1" and lib.edits.undo(1) is None
        assert json.dumps([[g.start, g.text] for g in lib.segments(1)]) == start
        embs = "SELECT embedding FROM segments WHERE session_id = 1 ORDER BY start"
        assert [r[0] for r in lib.conn.execute(embs)] == [e1, e2]
        assert {h.segment_id for h in lib.search("budjet")} == {1, 2} and not lib.segment(1).edited
        for label in ("Edit segment 1", "Split segment 2", "Rename S2 → Ben"):
            assert lib.edits.redo(1) == label
        got = lib.segments(1)
        assert [(g.id, g.start, g.end, g.text, g.speaker) for g in got] == [
            (1, 0.0, 3.25, "the budget for next year", "S1"), (2, 3.25, 4.5, "budjet talk,", "Ben"),
            (3, 4.5, 6.1, "part two", "Ben")]
        assert [r[0] for r in lib.conn.execute(embs)] == [e1, e2, e2]
        assert got[0].original_text == "the budjet for next year"
    assert list(data.glob("library.sqlite3.bak-v6-*"))


def test_a_damaged_version_6_history_entry_is_dropped_and_the_rest_undo(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(str(data / "library.sqlite3"), isolation_level=None)
    for version, sql in MIGRATIONS[:6]:
        conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;")
    conn.execute("INSERT INTO sessions (id, title, created, kind) VALUES (1, 'Old', '2025-01-02T10:00:00Z', 'file')")
    conn.execute("INSERT INTO speakers (id, session_id, label, name) VALUES (1, 1, 'S1', 'Ana')")
    good = [json.dumps(["speakers", 1, dict(session_id=1, label="S1", name=n, profile_id=None, embedding=None)])
            for n in (None, "Ana")]
    for label, before, after in (("Rename S1 → Ana", *good), ("Damaged", "not json", "")):
        conn.execute("INSERT INTO segment_history (session_id, op, label, before, after, created) "
                     "VALUES (1, 'rename', ?, ?, ?, '2025-01-02T10:00:00Z')", (label, before, after))
    conn.close()
    with Library.open(data) as lib:
        assert dbmod.user_version(lib.conn) == LATEST
        assert lib.edits.undo(1) == "Rename S1 → Ana" and lib.speaker(1, "S1").name is None
        assert lib.edits.undo(1) is None


def test_undo_step_says_which_segments_it_put_back_and_whether_they_kept_their_places(lib, meeting):
    sid, ids, _ = meeting
    lib.edits.replace_in_session(sid, "budjet", "budget")
    step = lib.edits.undo_step(sid)
    assert step is not None and step.in_place and sorted(step.segments) == ids[:2]
    assert [g.id for g in lib.segments_by_id([ids[1], 999_999, ids[0]])] == [ids[1], ids[0]]
    step = lib.edits.redo_step(sid)
    assert step is not None and step.in_place and step.label.startswith("Replace")
    a, b = lib.edits.split_segment(ids[1], 10)
    step = lib.edits.undo_step(sid)   # a segment goes away: the window reads the session again
    assert step is not None and not step.in_place and b.id not in [g.id for g in lib.segments(sid)]
    lib.edits.redo_step(sid)
    lib.edits.move_split(a.id, 6.0)
    step = lib.edits.undo_step(sid)   # a start time moved
    assert step is not None and not step.in_place
    assert lib.edits.undo_step(sid) is not None and lib.edits.undo_step(sid) is not None   # split, replace
    assert lib.edits.undo_step(sid) is None
