"""How the list rows are painted: the two-line rows of the session list and search results,
and the transcript's segment rows (speaker dot and name, time, marks, wrapped words), with
their heights cached so a long transcript lays out once. The data comes from ``qmodels``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .qmodels import ColorRole, EditedRole, OverlapRole, PlayingRole, SecondaryRole, SpeakerRole


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
    """Speaker dot + name + time (+ "edited") over the wrapped text; the segment being played
    has a tinted background. Heights are cached by text and width, so laying out a 4,000-row
    transcript again (after an edit changes a row's height) costs little."""

    PAD = 6

    def __init__(self, view):
        super().__init__(view)
        self._view = view
        self._heights: dict[tuple[str, int, int], int] = {}
        self._laid_out: dict[int, int] = {}   # row -> the height the view last asked for

    def _text_rect(self, rect: QRect, fm: QFontMetrics) -> QRect:
        return QRect(rect.left() + 20, rect.top() + fm.height() + self.PAD + 2,
                     max(40, rect.width() - 28), 10_000)

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else QApplication.style()
        opt.text = ""
        r = opt.rect
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        colour = index.data(ColorRole) or QColor("#888")
        if index.data(PlayingRole) and not selected:
            tint = QColor(colour)
            tint.setAlphaF(0.16)
            painter.fillRect(r, tint)
            painter.fillRect(QRect(r.left(), r.top(), 3, r.height()), colour)
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        fm = QFontMetrics(opt.font)
        fg = opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
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
        when = index.data(SecondaryRole) or ""
        if index.data(EditedRole):
            when += "  ✎ edited"
        if over := index.data(OverlapRole):
            when += f"  ⇄ {over} talking over"
        painter.drawText(QRect(r.left() + 20 + name_w, r.top() + self.PAD, r.width() - 28 - name_w, fm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, when)
        painter.setPen(fg)
        tr = self._text_rect(r, fm)
        tr.setHeight(r.bottom() - tr.top())
        painter.drawText(tr, Qt.TextFlag.TextWordWrap, index.data() or "")
        painter.restore()

    def rows_changed(self, first: QModelIndex, last: QModelIndex) -> None:
        """Rows' data changed: lay the list out again only if one of them needs another height
        (a 4,000-row relayout is tens of milliseconds, a repaint is nothing). Heights come from a
        cache keyed by text, so a find-and-replace that keeps every line count costs no relayout."""
        opt = QStyleOptionViewItem()
        opt.font = self._view.font()
        for r in range(first.row(), last.row() + 1):
            idx = first.siblingAtRow(r)
            before = self._laid_out.get(r)
            if before is None or self.sizeHint(opt, idx).height() != before:
                self.sizeHintChanged.emit(idx)
                return

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        width = self._view.viewport().width() or 600
        text = index.data() or " "
        key = (text, width, option.font.pointSize())
        h = self._heights.get(key)
        if h is None:
            h = self._height(QFontMetrics(option.font), width, text)
            if len(self._heights) > 50_000:
                self._heights.clear()
            self._heights[key] = h
        self._laid_out[index.row()] = h
        return QSize(width, h)

    @classmethod
    def _height(cls, fm: QFontMetrics, width: int, text: str) -> int:
        text_w = max(40, width - 28)   # as ``_text_rect``
        text_h = fm.boundingRect(QRect(0, 0, text_w, 10_000), Qt.TextFlag.TextWordWrap, text).height()
        return fm.height() + text_h + 2 * cls.PAD + 4

    def measurer(self) -> Callable[[Iterable[str]], dict[tuple[str, int, int], int]]:
        """``sizeHint``'s heights for texts, as a function a worker runs (it holds a copy of the
        font and the width): a find-and-replace's 2,900 new texts are measured there rather than
        in the window's relayout (~40 us each, ~120 ms in all, on the UI thread)."""
        font, width = QFont(self._view.font()), self._view.viewport().width() or 600
        known, size = self._heights, font.pointSize()

        def measure(texts: Iterable[str]) -> dict[tuple[str, int, int], int]:
            fm = QFontMetrics(font)   # texts measured before (an undo puts them back) are not again
            todo = {t or " " for t in texts}
            return {(t, width, size): self._height(fm, width, t) for t in todo if (t, width, size) not in known}
        return measure

    def prime(self, heights: dict[tuple[str, int, int], int]) -> None:
        """Heights a ``measurer`` found, for the layout to come."""
        if len(self._heights) + len(heights) > 50_000:
            self._heights.clear()
        self._heights.update(heights)
