"""Qt item models over the library: the session list and a session's transcript.

Both hold plain records (app.library.models) read on the main thread's
connection; reading a 1,000-session list or a 3-hour transcript takes a few
milliseconds. Delegates paint two-line rows (title over date, duration and
kind; speaker and time over wrapped text) so the lists stay fast however long
they get.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.fmt import clock
from app.library.models import Segment, Session, SessionState, Speaker

IdRole = Qt.ItemDataRole.UserRole + 1
SecondaryRole = Qt.ItemDataRole.UserRole + 2
StartRole = Qt.ItemDataRole.UserRole + 3
SpeakerRole = Qt.ItemDataRole.UserRole + 4
ColorRole = Qt.ItemDataRole.UserRole + 5
RecordRole = Qt.ItemDataRole.UserRole + 6

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
    def __init__(self, library, parent=None):
        super().__init__(parent)
        self.library = library
        self.session_id: int | None = None
        self._rows: list[Segment] = []
        self._speakers: dict[int, Speaker] = {}
        self._order: dict[int, int] = {}

    def load(self, session_id: int | None) -> None:
        self.beginResetModel()
        self.session_id = session_id
        self._read()
        self.endResetModel()

    def _read(self) -> None:
        if self.session_id is None:
            self._rows, self._speakers, self._order = [], {}, {}
            return
        self._rows = self.library.segments(self.session_id)
        sp = self.library.speakers(self.session_id)
        self._speakers = {s.id: s for s in sp}
        self._order = {s.id: i for i, s in enumerate(sorted(sp, key=lambda s: s.label))}

    def refresh(self) -> bool:
        """Re-read the session; returns True if anything changed. While a job appends segments
        only the tail is read (segments ending after the last one shown), so a refresh costs the
        same for a three-hour meeting as for a short one; a speaker change resets the view."""
        if self.session_id is None:
            return False
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
                self.beginInsertRows(QModelIndex(), len(old), len(old) + len(fresh) - 1)
                self._rows = old + fresh
                self.endInsertRows()
                return True
            if not changed and not fresh and len(old) == self.library.segment_count(self.session_id):
                return False
        self.beginResetModel()
        self._rows = self.library.segments(self.session_id)
        self._speakers = {s.id: s for s in sp}
        self._order = {s.id: i for i, s in enumerate(sorted(sp, key=lambda s: s.label))}
        self.endResetModel()
        return True

    def segment(self, row: int) -> Segment:
        return self._rows[row]

    def row_at_time(self, seconds: float) -> int:
        """The segment shown at ``seconds``; times are shown floored to the second, so a
        citation [01:39] means the segment whose start displays as 01:39 (or the one before)."""
        best = -1
        for i, g in enumerate(self._rows):
            if g.start < int(seconds) + 1.0:
                best = i
            else:
                break
        return max(best, 0) if self._rows else -1

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: QModelIndex | QPersistentModelIndex):
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        g = self._rows[index.row()]
        sp = self._speakers.get(g.speaker_id) if g.speaker_id is not None else None
        name = sp.display if sp else (g.speaker or "")
        if role == Qt.ItemDataRole.DisplayRole:
            return g.text
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
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{clock(g.start)} {name}: {g.text}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{clock(g.start)}–{clock(g.end)} · click to play from here"
        return None


class TwoLineDelegate(QStyledItemDelegate):
    """Title (bold) over a secondary line; used for sessions and search hits."""

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else QApplication.style()
        text = opt.text
        opt.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        r = opt.rect.adjusted(8, 4, -8, -4)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        pal = opt.palette
        fg = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        bold = QFontMetrics(opt.font)
        painter.save()
        f = painter.font()
        f.setBold(True)
        painter.setFont(f)
        painter.setPen(fg)
        painter.drawText(QRect(r.left(), r.top(), r.width(), bold.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(f).elidedText(text, Qt.TextElideMode.ElideRight, r.width()))
        f.setBold(False)
        painter.setFont(f)
        sec = index.data(SecondaryRole) or ""
        dim = QColor(fg)
        dim.setAlphaF(0.7)
        painter.setPen(dim)
        painter.drawText(QRect(r.left(), r.top() + bold.height() + 2, r.width(), bold.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(f).elidedText(sec, Qt.TextElideMode.ElideRight, r.width()))
        painter.restore()

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        h = QFontMetrics(option.font).height()
        return QSize(200, 2 * h + 10)


class SegmentDelegate(QStyledItemDelegate):
    """Speaker dot + name + time over the wrapped text."""

    PAD = 6

    def __init__(self, view):
        super().__init__(view)
        self._view = view

    def _text_rect(self, rect: QRect, fm: QFontMetrics) -> QRect:
        return QRect(rect.left() + 20, rect.top() + fm.height() + self.PAD + 2,
                     max(40, rect.width() - 28), 10_000)

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else QApplication.style()
        opt.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        fm = QFontMetrics(opt.font)
        r = opt.rect
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        fg = opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        colour = index.data(ColorRole) or QColor("#888")
        painter.save()
        painter.setRenderHint(painter.RenderHint.Antialiasing)
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        d = max(8, fm.height() // 2)
        painter.drawEllipse(r.left() + 6, r.top() + self.PAD + (fm.height() - d) // 2, d, d)
        f = painter.font()
        f.setBold(True)
        painter.setFont(f)
        painter.setPen(colour if not selected else fg)
        name = index.data(SpeakerRole) or ""
        painter.drawText(QRect(r.left() + 20, r.top() + self.PAD, r.width() - 28, fm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        name_w = QFontMetrics(f).horizontalAdvance(name) + 10
        f.setBold(False)
        painter.setFont(f)
        dim = QColor(fg)
        dim.setAlphaF(0.65)
        painter.setPen(dim)
        painter.drawText(QRect(r.left() + 20 + name_w, r.top() + self.PAD, 120, fm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, index.data(SecondaryRole) or "")
        painter.setPen(fg)
        tr = self._text_rect(r, fm)
        tr.setHeight(r.bottom() - tr.top())
        painter.drawText(tr, Qt.TextFlag.TextWordWrap, index.data() or "")
        painter.restore()

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        fm = QFontMetrics(option.font)
        width = self._view.viewport().width() or 600
        tr = self._text_rect(QRect(0, 0, width, 0), fm)
        text_h = fm.boundingRect(QRect(0, 0, tr.width(), 10_000), Qt.TextFlag.TextWordWrap,
                                 index.data() or " ").height()
        return QSize(width, fm.height() + text_h + 2 * self.PAD + 4)
