"""Corrections to a transcript: words, find-and-replace, speakers, split and merge, with undo.

``lib.edits`` shares the library's ``Store`` (and so its transactions). Each operation is one
transaction that also appends an entry to ``segment_history``: the segment and speaker rows it
touched as they were and as they became, a row each (``history``: stored and put back in SQL). ``undo(session_id)``
puts back what the newest entry not undone changed, ``redo`` re-applies the oldest undone one; a
new operation forgets the undone ones (one linear history per session). Only the columns an
entry changed are put back, so an undo never reverts what something else (diarization, a speaker
rename) changed in between. The history lives in the library file: undo survives a restart or a
crash, and the command line and the window share it. Each session keeps its newest
``HISTORY_LIMIT`` entries.

What a segment records (schema step 5):

- ``edited``: the user changed its words or its bounds (split, merge). Once set it stays set: a
  later transcription keeps the segment (``Library.delete_segments`` leaves it).
- ``original_text``: the model's words where the user changed them; NULL while the text is the
  model's (editing the words back to them clears it). ``restore_segment`` puts them back.
- ``speaker_set``: the user chose its speaker; diarization (``Library.assign_speakers``) keeps it.

Speakers the user names that the session does not have yet are created with the labels U1, U2, ...
(diarization's are S1, S2, ..., so a later diarization never hands model segments to them).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import history
from .db import LibraryError, NotFound
from .models import Segment, Speaker
from .store import SEGMENT_SQL, Store, now_iso, read_segment, segment_of

HISTORY_LIMIT = 200   # entries kept per session


class _Keep:
    """``rename_speaker``'s default: leave the voice profile link as it is."""


KEEP = _Keep()

def word_cut(text: str, fraction: float) -> int | None:
    """The character position of the word start nearest to ``fraction`` of ``text`` (never the
    first word's), where a split puts its cut; None for a text of one word."""
    starts = [m.start() for m in re.finditer(r"\S+", text)][1:]
    if not starts:
        return None
    target = max(0.0, min(1.0, fraction)) * len(text)
    return min(starts, key=lambda i: (abs(i - target), i))


def find_pattern(find: str, *, whole_word: bool = True, case: bool = False) -> re.Pattern[str]:
    """What ``replace_in_session`` looks for (a window counts matches with it as the user types)."""
    body = re.escape(find)
    if whole_word:  # a word character at either end must not continue a longer word
        body = ("(?<!\\w)" if re.match(r"\w", find) else "") + body + ("(?!\\w)" if re.search(r"\w$", find) else "")
    return re.compile(body, 0 if case else re.IGNORECASE)


class _Change:
    """The rows an operation touches, recorded in its history entry (``step``) before it changes them."""

    def __init__(self, conn: sqlite3.Connection, step: int):
        self.conn, self.step = conn, step

    def touch(self, table: str, ids: Sequence[int | None]) -> None:
        history.touch(self.conn, self.step, table, [i for i in dict.fromkeys(ids) if i is not None])

    def created(self, table: str, row_id: int) -> None:
        history.created(self.conn, self.step, table, row_id)


@dataclass(frozen=True)
class Step:
    """An undo or redo done: its label, the segments it put back, and whether it kept the
    session's segments and their order as they were (no segment came, went or moved in time)."""
    label: str
    segments: list[int]
    in_place: bool


class Edits:
    """``lib.edits``: the user's corrections to a session's transcript, undoable."""

    def __init__(self, store: Store):
        self._store = store
        self.conn = store.conn

    # -- the operations ---------------------------------------------------------------------------
    def edit_segment(self, segment_id: int, text: str) -> Segment:
        """New words for a segment (surrounding whitespace dropped; never empty)."""
        text = (text or "").strip()
        if not text:
            raise LibraryError("a segment's text cannot be empty (merge it into its neighbour instead)")
        seg = read_segment(self.conn, segment_id)
        if text != seg.text:
            with self._op(seg.session_id, "edit", f"Edit segment {seg.id}") as ch:
                ch.touch("segments", [seg.id])
                self._set_text(seg, text)
        return read_segment(self.conn, segment_id)

    def restore_segment(self, segment_id: int) -> Segment:
        """Put back the model's words of a segment whose words the user changed."""
        seg = read_segment(self.conn, segment_id)
        if seg.original_text is None:
            raise LibraryError(f"segment {seg.id} already has the model's words")
        with self._op(seg.session_id, "restore", f"Restore segment {seg.id}") as ch:
            ch.touch("segments", [seg.id])
            self._set_text(seg, seg.original_text)
        return read_segment(self.conn, segment_id)

    def replace_in_session(self, session_id: int, find: str, replace: str, *, whole_word: bool = True,
                           case: bool = False) -> int:
        """Replace ``find`` by ``replace`` in every segment of the session, in one transaction (one
        undo step). ``whole_word``: only where ``find`` is not part of a longer word; ``case``: match
        case exactly. Returns the number of replacements made (0: nothing changed)."""
        if not (find or "").strip():
            raise LibraryError("give the words to find")
        self._store.one("sessions", session_id, "session")
        pattern = find_pattern(find, whole_word=whole_word, case=case)
        changes, count = [], 0
        rows = self.conn.execute(SEGMENT_SQL + " WHERE g.session_id = ? ORDER BY g.start, g.id", (session_id,))
        for seg in map(segment_of, rows.fetchall()):
            new, n = pattern.subn(lambda _m: replace, seg.text)
            new = new.strip()
            if n and new != seg.text:
                if not new:
                    raise LibraryError(f"that would leave segment {seg.id} empty; nothing was replaced")
                changes.append((seg, new))
                count += n
        if changes:
            with self._op(session_id, "replace", f"Replace “{find}” with “{replace}” ({count}×)") as ch:
                ch.touch("segments", [seg.id for seg, _ in changes])
                self.conn.executemany("UPDATE segments SET text = ?, original_text = ?, edited = 1 WHERE id = ?",
                                      [self._text_params(seg, new) for seg, new in changes])
        return count

    def set_segment_speaker(self, segment_id: int, speaker: str, *, following: bool = False) -> list[int]:
        """Give a segment to a speaker of its session, named by label (S1) or name (Ana, any case);
        a name the session does not have makes a new speaker (U1, U2, ... named so).
        ``following``: also every later segment of the speaker the segment had. The segments are
        marked ``speaker_set``; a speaker left without segments is removed. Returns the ids of the
        segments changed."""
        who = (speaker or "").strip()
        if not who:
            raise LibraryError("give the speaker's name or label")
        seg = read_segment(self.conn, segment_id)
        sid = seg.session_id
        with self._op(sid, "speaker", f"Segment {seg.id}{' and later ones' if following else ''} → {who}") as ch:
            target = self._find_speaker(sid, who)
            if target is None:
                target = self._store.insert("speakers", {"session_id": sid, "label": self._new_label(sid),
                                                         "name": who})
                ch.created("speakers", target)
            if following:
                ids = [r[0] for r in self.conn.execute(
                    "SELECT id FROM segments WHERE session_id = ? AND speaker_id IS ? "
                    "AND (start > ? OR (start = ? AND id >= ?)) ORDER BY start, id",
                    (sid, seg.speaker_id, seg.start, seg.start, seg.id))]
            else:
                ids = [seg.id]
            ch.touch("segments", ids)
            ch.touch("speakers", [seg.speaker_id])
            self.conn.executemany("UPDATE segments SET speaker_id = ?, speaker_set = 1 WHERE id = ?",
                                  [(target, i) for i in ids])
            if seg.speaker_id is not None and seg.speaker_id != target:
                self.conn.execute("DELETE FROM speakers WHERE id = ? AND NOT EXISTS "
                                  "(SELECT 1 FROM segments WHERE speaker_id = ?)", (seg.speaker_id, seg.speaker_id))
        return ids

    def split_segment(self, segment_id: int, at_char: int, at_seconds: float | None = None) -> tuple[Segment, Segment]:
        """Cut a segment in two at character ``at_char`` of its text, at ``at_seconds`` (default:
        the same fraction of its duration). Both halves keep its speaker and voice; together they
        hold its words and its time. Returns the two halves."""
        seg = read_segment(self.conn, segment_id)
        text = seg.text
        if not 0 < at_char < len(text):
            raise LibraryError(f"a split needs a position inside the text (1 to {len(text) - 1})")
        left, right = text[:at_char].rstrip(), text[at_char:].lstrip()
        if not left or not right:
            raise LibraryError("a split needs words on both sides")
        if at_seconds is None:
            at = seg.start + (seg.end - seg.start) * at_char / len(text)
        else:
            at = float(at_seconds)
            if not seg.start <= at <= seg.end:
                raise LibraryError(f"{at:.2f}s is outside segment {seg.id} ({seg.start:.2f}s to {seg.end:.2f}s)")
        orig_left = orig_right = None
        if seg.original_text is not None:  # the model's words, cut at about the same place
            cut = word_cut(seg.original_text, at_char / len(text))
            if cut is None:
                orig_left = seg.original_text
            else:
                orig_left, orig_right = seg.original_text[:cut].rstrip(), seg.original_text[cut:].lstrip()
        with self._op(seg.session_id, "split", f"Split segment {seg.id}") as ch:
            ch.touch("segments", [seg.id])
            cur = self.conn.execute(
                'INSERT INTO segments (session_id, start, "end", speaker_id, text, language, embedding, edited, '
                "original_text, speaker_set) SELECT session_id, ?, \"end\", speaker_id, ?, language, embedding, 1, "
                "?, speaker_set FROM segments WHERE id = ?",
                (at, right, orig_right if orig_right != right else None, seg.id))
            assert cur.lastrowid is not None
            new_id = cur.lastrowid
            ch.created("segments", new_id)
            self.conn.execute('UPDATE segments SET "end" = ?, text = ?, original_text = ?, edited = 1 WHERE id = ?',
                              (at, left, orig_left if orig_left != left else None, seg.id))
        return read_segment(self.conn, seg.id), read_segment(self.conn, new_id)

    def next_segment(self, segment_id: int) -> Segment | None:
        """The segment after this one in its session (time order), or None for the last."""
        a = read_segment(self.conn, segment_id)
        row = self.conn.execute(SEGMENT_SQL + " WHERE g.session_id = ? AND (g.start > ? OR (g.start = ? AND g.id > ?)) "
                                "ORDER BY g.start, g.id LIMIT 1", (a.session_id, a.start, a.start, a.id)).fetchone()
        return segment_of(row) if row is not None else None

    def move_split(self, segment_id: int, at_seconds: float) -> tuple[Segment, Segment]:
        """Move the boundary between a segment and the next one, where the first ends as the
        second starts (the two halves of a split), to ``at_seconds``: strictly inside the two
        segments, else refused. Returns the two segments."""
        a = read_segment(self.conn, segment_id)
        b = self.next_segment(segment_id)
        if b is None or abs(a.end - b.start) > 1e-6:
            raise LibraryError(f"segment {a.id} and the next one do not meet: there is no split time to move")
        at = float(at_seconds)
        if not a.start < at < b.end:
            raise LibraryError(f"{at:.2f}s is outside segments {a.id} and {b.id} ({a.start:.2f}s to {b.end:.2f}s)")
        with self._op(a.session_id, "move-split", f"Move the split of segments {a.id} and {b.id}") as ch:
            ch.touch("segments", [a.id, b.id])
            self.conn.execute('UPDATE segments SET "end" = ?, edited = 1 WHERE id = ?', (at, a.id))
            self.conn.execute("UPDATE segments SET start = ?, edited = 1 WHERE id = ?", (at, b.id))
        return read_segment(self.conn, a.id), read_segment(self.conn, b.id)

    def merge_with_next(self, segment_id: int) -> Segment:
        """Join a segment and the next one of its session (in time order): the words with a space,
        the time spanning both; the voice of the longer one. Refused when the two have different
        speakers (the user fixes the speaker first, so no one's words are silently given to
        someone else). Returns the merged segment (the next one is gone)."""
        a = read_segment(self.conn, segment_id)
        b = self.next_segment(segment_id)
        if b is None:
            raise LibraryError(f"segment {a.id} is the last of its session: nothing to merge it with")
        if a.speaker_id is not None and b.speaker_id is not None and a.speaker_id != b.speaker_id:
            raise LibraryError(f"segment {a.id} is {a.speaker}'s and segment {b.id} is {b.speaker}'s: "
                               "give them one speaker first")
        original = None
        if a.original_text is not None or b.original_text is not None:
            original = f"{(a.original_text or a.text).strip()} {(b.original_text or b.text).strip()}".strip()
        longer = a if a.end - a.start >= b.end - b.start else b
        with self._op(a.session_id, "merge", f"Merge segments {a.id} and {b.id}") as ch:
            ch.touch("segments", [a.id, b.id])
            self.conn.execute(
                'UPDATE segments SET start = ?, "end" = ?, text = ?, original_text = ?, edited = 1, speaker_id = ?, '
                "speaker_set = ?, embedding = (SELECT embedding FROM segments WHERE id = ?) WHERE id = ?",
                (min(a.start, b.start), max(a.end, b.end), f"{a.text.strip()} {b.text.strip()}".strip(), original,
                 a.speaker_id if a.speaker_id is not None else b.speaker_id, int(a.speaker_set or b.speaker_set),
                 longer.id, a.id))
            self.conn.execute("DELETE FROM segments WHERE id = ?", (b.id,))
        return read_segment(self.conn, a.id)

    def rename_speaker(self, session_id: int, label: str, name: str | None,
                       profile_id: int | None | _Keep = KEEP) -> Speaker:
        """Name a speaker of the session (None or empty: back to its label); ``profile_id``: also
        link it to a saved voice (None: unlink). Undo puts back the name and the link (a voice
        saved meanwhile stays among the saved voices)."""
        sp = self._speaker(session_id, label)
        row: dict[str, Any] = {"name": (name or "").strip() or None}
        if not isinstance(profile_id, _Keep):
            row["profile_id"] = profile_id
        new = row["name"] or sp.label
        with self._op(session_id, "rename", f"Rename {sp.display} → {new}") as ch:
            ch.touch("speakers", [sp.id])
            self._store.update("speakers", sp.id, row)
        return self._speaker(session_id, label)

    def merge_speakers(self, session_id: int, label: str, into: str) -> Speaker:
        """Give every segment of speaker ``label`` to speaker ``into`` and remove ``label``;
        undo brings the speaker and its segments back."""
        src, dst = self._speaker(session_id, label), self._speaker(session_id, into)
        if src.id == dst.id:
            raise LibraryError(f"{src.display} cannot be merged into itself")
        with self._op(session_id, "merge-speakers", f"Merge {src.display} into {dst.display}") as ch:
            ch.touch("segments", [r[0] for r in self.conn.execute(
                "SELECT id FROM segments WHERE speaker_id = ?", (src.id,))])
            ch.touch("speakers", [src.id, dst.id])
            self.conn.execute("UPDATE segments SET speaker_id = ? WHERE speaker_id = ?", (dst.id, src.id))
            # an overlap mark follows its speaker (undo leaves it with ``into``: marks are not history)
            self.conn.execute("UPDATE overlaps SET speaker_id = ? WHERE speaker_id = ?", (dst.id, src.id))
            self.conn.execute("DELETE FROM speakers WHERE id = ?", (src.id,))
        return self._speaker(session_id, into)

    # -- undo and redo ----------------------------------------------------------------------------
    def undo(self, session_id: int) -> str | None:
        """Take back the session's newest change not yet undone; returns what it was (a label for
        the user), or None when there is nothing to undo."""
        step = self.undo_step(session_id)
        return step.label if step else None

    def redo(self, session_id: int) -> str | None:
        """Make the last undone change again; returns its label, or None when there is none."""
        step = self.redo_step(session_id)
        return step.label if step else None

    def undo_step(self, session_id: int) -> Step | None:
        """``undo``, saying which segments it put back (a window re-reads only those)."""
        return self._step(session_id, undo=True)

    def redo_step(self, session_id: int) -> Step | None:
        """``redo``, saying which segments it put back."""
        return self._step(session_id, undo=False)

    def undo_redo(self, session_id: int) -> tuple[str | None, str | None]:
        """The labels of what ``undo`` and ``redo`` would do now (None: nothing): for the menu items."""
        und = self.conn.execute("SELECT label FROM segment_history WHERE session_id = ? AND undone = 0 "
                                "ORDER BY id DESC LIMIT 1", (session_id,)).fetchone()
        red = self.conn.execute("SELECT label FROM segment_history WHERE session_id = ? AND undone = 1 "
                                "ORDER BY id LIMIT 1", (session_id,)).fetchone()
        return (und[0] if und else None), (red[0] if red else None)

    def _step(self, session_id: int, undo: bool) -> Step | None:
        self._store.one("sessions", session_id, "session")
        with self._store.transaction():
            row = self.conn.execute(
                "SELECT id, label FROM segment_history WHERE session_id = ? AND undone = ? "
                f"ORDER BY id {'DESC' if undo else 'ASC'} LIMIT 1", (session_id, 0 if undo else 1)).fetchone()
            if row is None:
                return None
            segments, in_place = history.apply(self.conn, row[0], undo)
            self.conn.execute("UPDATE segment_history SET undone = ? WHERE id = ?", (1 if undo else 0, row[0]))
            self.conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now_iso(), session_id))
        return Step(str(row[1]), segments, in_place)

    # -- helpers ----------------------------------------------------------------------------------
    @contextmanager
    def _op(self, session_id: int, op: str, label: str) -> Iterator[_Change]:
        """One undoable operation: its writes and its history entry in one transaction. The entry
        is written first (its rows refer to it) and dropped again if nothing changed."""
        with self._store.transaction():
            step = self._store.insert("segment_history", {"session_id": session_id, "op": op, "label": label,
                                                          "created": now_iso()})
            yield _Change(self.conn, step)
            if not history.finish(self.conn, step):
                self.conn.execute("DELETE FROM segment_history WHERE id = ?", (step,))
                return
            self.conn.execute("DELETE FROM segment_history WHERE session_id = ? AND undone = 1", (session_id,))
            self.conn.execute("DELETE FROM segment_history WHERE session_id = ? AND id NOT IN (SELECT id FROM "
                              "segment_history WHERE session_id = ? ORDER BY id DESC LIMIT ?)",
                              (session_id, session_id, HISTORY_LIMIT))
            self.conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now_iso(), session_id))

    def _set_text(self, seg: Segment, text: str) -> None:
        self.conn.execute("UPDATE segments SET text = ?, original_text = ?, edited = 1 WHERE id = ?",
                          self._text_params(seg, text))

    @staticmethod
    def _text_params(seg: Segment, text: str) -> tuple[str, str | None, int]:
        model = seg.original_text if seg.original_text is not None else seg.text
        return text, None if text == model else model, seg.id

    def _speaker(self, session_id: int, label: str) -> Speaker:
        rows = self._store.rows("SELECT * FROM speakers WHERE session_id = ? AND label = ?", (session_id, label))
        if not rows:
            raise NotFound(f"session {session_id} has no speaker '{label}'")
        return Speaker(**rows[0])

    def _find_speaker(self, session_id: int, who: str) -> int | None:
        rows = self.conn.execute("SELECT id, label, name FROM speakers WHERE session_id = ? ORDER BY id",
                                 (session_id,)).fetchall()
        for pick in (lambda r: r[1] == who, lambda r: (r[2] or "").casefold() == who.casefold(),
                     lambda r: r[1].casefold() == who.casefold()):
            hit = next((r[0] for r in rows if pick(r)), None)
            if hit is not None:
                return int(hit)
        return None

    def _new_label(self, session_id: int) -> str:
        taken = {r[0] for r in self.conn.execute("SELECT label FROM speakers WHERE session_id = ?", (session_id,))}
        n = 1
        while f"U{n}" in taken:
            n += 1
        return f"U{n}"
