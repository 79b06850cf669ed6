"""Qt item models over the library: the session list and a session's transcript.

Both hold plain records (app.library.models) read on the main thread's
connection; reading a 1,000-session list or a 3-hour transcript takes a few
milliseconds. ``delegates`` paints their rows. A segment also carries who else
speaks over it (the session's overlap marks, ``OverlapRole``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from operator import attrgetter
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor

from app.fmt import clock
from app.library.models import Overlap, Segment, Session, SessionState, Speaker, marks_on_segments

IdRole = Qt.ItemDataRole.UserRole + 1
SecondaryRole = Qt.ItemDataRole.UserRole + 2
StartRole = Qt.ItemDataRole.UserRole + 3
SpeakerRole = Qt.ItemDataRole.UserRole + 4
ColorRole = Qt.ItemDataRole.UserRole + 5
RecordRole = Qt.ItemDataRole.UserRole + 6
EditedRole = Qt.ItemDataRole.UserRole + 7     # the user changed the segment's words or bounds
PlayingRole = Qt.ItemDataRole.UserRole + 8    # the segment being played now
OverlapRole = Qt.ItemDataRole.UserRole + 9    # who else speaks over the segment (names)

# Distinct on light and dark backgrounds (Okabe-Ito, colour-blind safe).
SPEAKER_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C6D31", "#999999"]
KIND_NAMES = {"recording": "recording", "file": "imported file", "dictation": "dictation"}
STATUS_NAMES = {SessionState.RECORDING: "● recording now", SessionState.TRANSCRIBING: "transcribing…",
                SessionState.FAILED: "failed"}


def describe(s) -> list[str]:
    """Date, duration, kind and (when it is not simply ready) the state of a session."""
    parts = [local_time(s.created), clock(s.duration), KIND_NAMES.get(s.kind, s.kind)]
    if s.status in STATUS_NAMES:
        parts.append(STATUS_NAMES[s.status])
    return [p for p in parts if p]


def local_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        t = time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return iso
    import calendar

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(calendar.timegm(t)))


def speaker_colour(label: str | None, index: int | None = None) -> QColor:
    if index is None:
        digits = "".join(ch for ch in (label or "") if ch.isdigit())
        index = int(digits) - 1 if digits else sum(map(ord, label or "?"))
    return QColor(SPEAKER_COLOURS[index % len(SPEAKER_COLOURS)])


@dataclass(frozen=True)
class Snapshot:
    """The rows a SegmentModel showed at one ``version``."""
    version: int
    rows: list[Segment]


@dataclass(frozen=True)
class Diff:
    """``SegmentModel.diff``: the difflib opcodes from a snapshot's rows to new ones, the new rows
    whose data changed in place, and the new rows' start times."""
    version: int
    ops: list[tuple[str, int, int, int, int]]
    changed: list[int]
    starts: list[float]


class SessionListModel(QAbstractListModel):
    def __init__(self, library, parent=None):
        super().__init__(parent)
        self.library = library
        self._rows: list[Session] = []

    def reload(self) -> None:
        self.beginResetModel()
        self._rows = self.library.sessions()
        self.endResetModel()

    def row_of(self, session_id: int) -> int:
        for i, s in enumerate(self._rows):
            if s.id == session_id:
                return i
        return -1

    def session(self, row: int) -> Session:
        return self._rows[row]

    def update_session(self, session_id: int) -> None:
        """Refresh one row (or add it at the top if it is new)."""
        from app.library.db import NotFound

        try:
            s = self.library.get_session(session_id)
        except NotFound:
            r = self.row_of(session_id)
            if r >= 0:
                self.beginRemoveRows(QModelIndex(), r, r)
                del self._rows[r]
                self.endRemoveRows()
            return
        r = self.row_of(session_id)
        if r < 0:
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._rows.insert(0, s)
            self.endInsertRows()
        else:
            self._rows[r] = s
            idx = self.index(r)
            self.dataChanged.emit(idx, idx)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 - Qt API; the invalid index is never mutated
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        s = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return s.title or "Untitled"
        if role in (SecondaryRole, Qt.ItemDataRole.ToolTipRole):
            return " · ".join(describe(s))
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{s.title or 'Untitled'}, {self.data(index, SecondaryRole)}"
        if role == IdRole:
            return s.id
        if role == RecordRole:
            return s
        return None


class SegmentModel(QAbstractListModel):
    """A session's segments in time order. Text typed into a row (``setData``) is shown at once
    and reported as ``text_edited`` for the view to store; ``apply`` brings in what the library
    now holds as row inserts, removals and changes (never a reset, so an open editor, the
    selection and the scroll position stay)."""

    text_edited = Signal(int, str)   # segment id, new text

    def __init__(self, library, parent=None):
        super().__init__(parent)
        self.library = library
        self.session_id: int | None = None
        self._rows: list[Segment] = []
        self._starts: list[float] = []
        self._speakers: dict[int, Speaker] = {}
        self._order: dict[int, int] = {}
        self._marks: list[Overlap] = []               # the session's overlap marks
        self._over: dict[int, list[Overlap]] = {}     # segment id -> the marks over it
        self.playing_row = -1
        self.loading = False   # rows being read on a worker (``begin_load``)
        self.version = 0       # counts changes of the rows (a worker's ``diff`` is for one version)

    def load(self, session_id: int | None) -> None:
        """Show a session, read here (on the main thread's connection)."""
        self.beginResetModel()
        self.session_id = session_id
        self.playing_row = -1
        self.loading = False
        self.version += 1
        self._read()
        self.endResetModel()

    def begin_load(self, session_id: int) -> None:
        """Show a session whose rows are being read elsewhere (a worker): empty until ``set_rows``;
        meanwhile ``refresh`` does nothing."""
        self.beginResetModel()
        self.session_id, self.playing_row, self.loading = session_id, -1, True
        self.version += 1
        self._rows, self._starts = [], []
        self._set_speakers([])
        self.endResetModel()

    def set_rows(self, rows: list[Segment], speakers: list[Speaker], starts: list[float]) -> None:
        """The rows read for ``begin_load``, prepared off this thread (``starts``: their start
        times), shown with one reset: no per-row work here."""
        self.beginResetModel()
        self._rows, self._starts, self.loading = rows, starts, False
        self.version += 1
        self._set_speakers(speakers)
        self._marks = self.library.overlaps(self.session_id) if self.session_id is not None else []
        self._map_marks()
        self.endResetModel()

    def _read(self) -> None:
        if self.session_id is None:
            self._rows, self._speakers, self._order, self._starts = [], {}, {}, []
            self._marks, self._over = [], {}
            return
        self._rows = self.library.segments(self.session_id)
        self._starts = [g.start for g in self._rows]
        self._set_speakers(self.library.speakers(self.session_id))
        self._marks = self.library.overlaps(self.session_id)
        self._map_marks()

    def _map_marks(self) -> None:
        """Each overlap mark on the segment it lies in (``marks_on_segments``)."""
        self._over = marks_on_segments(self._rows, self._marks) if self._marks else {}

    def _refresh_marks(self) -> bool:
        """Re-read the overlap marks (transcription writes them last); repaint the rows they
        touch. Returns True if they changed."""
        marks = self.library.overlaps(self.session_id) if self.session_id is not None else []
        if marks == self._marks:   # rows that moved were mapped again where they changed (apply)
            return False
        touched = set(self._over)
        self._marks = marks
        self._map_marks()
        touched |= set(self._over)
        for r, g in enumerate(self._rows):
            if g.id in touched:
                self.dataChanged.emit(self.index(r), self.index(r))
        return True

    def _set_speakers(self, sp: list[Speaker]) -> None:
        self._speakers = {s.id: s for s in sp}
        self._order = {s.id: i for i, s in enumerate(sorted(sp, key=lambda s: s.label))}

    def speakers(self) -> list[Speaker]:
        return sorted(self._speakers.values(), key=lambda s: s.label)

    def refresh(self) -> bool:
        """Re-read the session; returns True if anything changed. While a job appends segments
        only the tail is read (segments ending after the last one shown), so a refresh costs the
        same for a three-hour meeting as for a short one; anything else is applied as a diff."""
        if self.session_id is None or self.loading:
            return False
        rows = self._refresh_rows()
        return self._refresh_marks() or rows

    def _refresh_rows(self) -> bool:
        assert self.session_id is not None
        sp = self.library.speakers(self.session_id)
        same_speakers = {s.id: (s.name, s.label) for s in sp} == {
            s.id: (s.name, s.label) for s in self._speakers.values()}
        old = self._rows
        if same_speakers and old:
            last = old[-1]
            tail = self.library.segments(self.session_id, start=last.start)
            known = {g.id: g for g in old[-len(tail) - 1:]} if tail else {}
            fresh = [g for g in tail if g.id not in known]
            changed = any(known[g.id] != g for g in tail if g.id in known)
            if not changed and fresh and fresh[0].start >= last.start \
                    and len(old) + len(fresh) == self.library.segment_count(self.session_id):
                self.version += 1
                self.beginInsertRows(QModelIndex(), len(old), len(old) + len(fresh) - 1)
                self._rows = old + fresh
                self._starts += [g.start for g in fresh]
                if self._marks:
                    self._map_marks()
                self.endInsertRows()
                return True
            if not changed and not fresh and len(old) == self.library.segment_count(self.session_id):
                return False
        return self.apply(self.library.segments(self.session_id), sp)

    def snapshot(self) -> Snapshot:
        """The rows shown now, for ``diff`` on a worker (a copy of the list: cheap)."""
        return Snapshot(self.version, list(self._rows))

    @staticmethod
    def diff(old: Snapshot, rows: list[Segment]) -> Diff:
        """How to go from ``old`` to ``rows``: no Qt, so a worker can find it (a 4,000-row
        difflib run or comparison is 10-25 ms of Python the UI thread does not have)."""
        old_ids, new_ids = [g.id for g in old.rows], [g.id for g in rows]
        ops: Sequence[tuple[str, int, int, int, int]]
        if old_ids == new_ids:  # the same rows (a find-and-replace, an undo of one): no diff to find
            ops = [("equal", 0, len(rows), 0, len(rows))] if rows else []
        else:
            ops = SequenceMatcher(None, old_ids, new_ids, autojunk=False).get_opcodes()
        changed = []   # rows (in ``rows``) kept in place whose data changed
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                changed += [j1 + k for k, (g, new) in enumerate(zip(old.rows[i1:i2], rows[j1:j2], strict=True))
                            if g != new]
        return Diff(old.version, list(ops), changed, [g.start for g in rows])

    def apply(self, rows: list[Segment], speakers: list[Speaker], diff: Diff | None = None) -> bool:
        """Make the model show ``rows`` (the session's segments, in time order) with ``speakers``:
        inserts, removals and changed rows only (``diff``: found already, from a ``snapshot`` of
        what is still shown). Returns True if anything changed."""
        if diff is None or diff.version != self.version:
            diff = self.diff(self.snapshot(), rows)
        self.version += 1
        old_sp = {s.id: (s.name, s.label) for s in self._speakers.values()}
        self._set_speakers(speakers)
        ops = diff.ops
        for tag, i1, i2, j1, j2 in reversed(ops):  # from the end: earlier indices stay valid
            if tag == "equal":
                self._rows[i1:i2] = rows[j1:j2]
                continue
            if i2 > i1:
                self.beginRemoveRows(QModelIndex(), i1, i2 - 1)
                del self._rows[i1:i2]
                self.endRemoveRows()
            if j2 > j1:
                self.beginInsertRows(QModelIndex(), i1, i1 + j2 - j1 - 1)
                self._rows[i1:i1] = rows[j1:j2]
                self.endInsertRows()
        self._starts = diff.starts
        self._map_marks()
        where = diff.changed   # the model shows ``rows`` now, so their rows are these
        if len(where) > 50:  # a find-and-replace: one signal over the span, one relayout
            self.dataChanged.emit(self.index(where[0]), self.index(where[-1]))
        for r in where if len(where) <= 50 else ():
            self.dataChanged.emit(self.index(r), self.index(r))
        speakers_changed = old_sp != {s.id: (s.name, s.label) for s in speakers}
        if speakers_changed and self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))
        return bool(where) or speakers_changed or any(op[0] != "equal" for op in ops)

    def update_rows(self, rows: list[Segment], speakers: list[Speaker]) -> None:
        """Show the stored state of some rows (same segments in the same order; a time may move
        within it): a one-row correction repaints one row instead of comparing the session."""
        old_sp = {s.id: (s.name, s.label) for s in self._speakers.values()}
        self._set_speakers(speakers)
        ids = {x.id for x in rows}
        where = {g.id: r for r, g in enumerate(self._rows) if g.id in ids}
        changed = []
        for g in rows:
            r = where.get(g.id)
            if r is not None and self._rows[r] != g:
                self._rows[r] = g
                self._starts[r] = g.start
                changed.append(r)
        if changed:
            self.version += 1
            changed.sort()
            if self._marks:
                self._map_marks()
        if len(changed) > 50:  # an undone find-and-replace: one signal over the span, one relayout
            self.dataChanged.emit(self.index(changed[0]), self.index(changed[-1]))
        for r in changed if len(changed) <= 50 else ():
            self.dataChanged.emit(self.index(r), self.index(r))
        if old_sp != {s.id: (s.name, s.label) for s in speakers} and self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def segment(self, row: int) -> Segment:
        return self._rows[row]

    def row_of(self, segment_id: int) -> int:
        for i, g in enumerate(self._rows):
            if g.id == segment_id:
                return i
        return -1

    def row_at_time(self, seconds: float) -> int:
        """The segment shown at ``seconds``; times are shown floored to the second, so a
        citation [01:39] means the segment whose start displays as 01:39 (or the one before)."""
        if not self._rows:
            return -1
        return max(bisect.bisect_left(self._starts, int(seconds) + 1.0) - 1, 0)

    def row_playing_at(self, seconds: float) -> int:
        """The segment being heard at ``seconds`` (the last one started by then), -1 before the first."""
        return bisect.bisect_right(self._starts, seconds) - 1

    def spans(self) -> list[tuple[float, float, QColor]]:
        """(start, end, speaker colour) of every segment: the seek bar's picture of the session.
        The rows are walked by ``map``/``zip`` in C, not a Python loop: a loop's 4,000 turns each
        hand the interpreter lock to a worker running Python (a replace) and took 55 ms, not 1."""
        sids = list(map(attrgetter("speaker_id"), self._rows))
        colours: dict[int | None, QColor] = {}
        for sid in set(sids):   # a few speakers
            sp = self._speakers.get(sid) if sid is not None else None
            colours[sid] = speaker_colour(sp.label if sp else None,
                                          self._order.get(sid) if sid is not None else None)
        return list(zip(map(attrgetter("start"), self._rows), map(attrgetter("end"), self._rows),
                        map(colours.__getitem__, sids), strict=True))

    def set_playing_row(self, row: int) -> None:
        if row == self.playing_row:
            return
        old, self.playing_row = self.playing_row, row
        for r in (old, row):
            if 0 <= r < len(self._rows):
                idx = self.index(r)
                self.dataChanged.emit(idx, idx, [PlayingRole])

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: QModelIndex | QPersistentModelIndex):
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,  # noqa: N802 - Qt API
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.row() >= len(self._rows):
            return False
        g = self._rows[index.row()]
        text = str(value or "").strip()
        if not text or text == g.text:
            return False
        self.version += 1
        self._rows[index.row()] = replace(g, text=text, edited=True)  # shown now; the view stores it
        self.dataChanged.emit(index, index)
        self.text_edited.emit(g.id, text)
        return True

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        g = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return g.text   # first: the delegate's sizeHint asks it of every row as the list lays out
        sp = self._speakers.get(g.speaker_id) if g.speaker_id is not None else None
        name = sp.display if sp else (g.speaker or "")
        if role == SpeakerRole:
            return name
        if role == SecondaryRole:
            return clock(g.start)
        if role == StartRole:
            return g.start
        if role == ColorRole:
            return speaker_colour(sp.label if sp else None,
                                  self._order.get(g.speaker_id) if g.speaker_id is not None else None)
        if role == IdRole:
            return g.id
        if role == EditedRole:
            return bool(g.edited or g.original_text is not None)
        if role == PlayingRole:
            return index.row() == self.playing_row
        if role == OverlapRole:
            return self._over_names(g)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            over = self._over_names(g)
            return (f"{clock(g.start)} {name}{' (edited)' if g.edited else ''}"
                    f"{f' ({over} talking over)' if over else ''}: {g.text}")
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{clock(g.start)}–{clock(g.end)} · click to play from here · double-click or F2 to correct"
            for m in self._over.get(g.id, ()):
                tip += f"\n{self._mark_name(m)} talks over at {clock(m.start)} ({m.end - m.start:.1f} s)"
            if g.original_text is not None:
                tip += f"\nThe model heard: {g.original_text}"
            return tip
        return None


    def _mark_name(self, m: Overlap) -> str:
        sp = self._speakers.get(m.speaker_id) if m.speaker_id is not None else None
        return sp.display if sp else (m.speaker or "Someone")

    def _over_names(self, g: Segment) -> str:
        """Who speaks over the segment: their names, once each, in time order."""
        return ", ".join(dict.fromkeys(self._mark_name(m) for m in self._over.get(g.id, ())))
