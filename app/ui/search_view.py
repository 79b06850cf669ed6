"""Search results over the full-text index: title and snippet; choosing one opens the session there."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QLabel, QListView, QStackedWidget

from app.fmt import clock

from .delegates import TwoLineDelegate
from .qmodels import IdRole, SecondaryRole, StartRole

HIGHLIGHT = ("«", "»")


class SearchResults(QStackedWidget):
    hit_chosen = Signal(int, float)   # session id, seconds (0 for a title or summary hit)

    def __init__(self, library, parent=None):
        super().__init__(parent)
        self.library = library
        self.model = QStandardItemModel(self)
        self.view = QListView()
        self.view.setAccessibleName("Search results")
        self.view.setModel(self.model)
        self.view.setItemDelegate(TwoLineDelegate(self.view))
        self.view.setUniformItemSizes(True)
        self.view.activated.connect(self._chosen)
        self.view.clicked.connect(self._chosen)
        self.none = QLabel("No matches.")
        self.none.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.addWidget(self.view)
        self.addWidget(self.none)
        self.hits = []

    def run(self, query: str, limit: int = 200) -> int:
        self.hits = self.library.search(query, limit=limit, highlight=HIGHLIGHT)
        self.model.clear()
        for h in self.hits:
            it = QStandardItem(h.session_title or "Untitled")
            where = clock(h.offset) if h.offset is not None else h.source
            who = f"{h.speaker}: " if h.speaker else ""
            it.setData(f"{where} · {who}{h.snippet}", SecondaryRole)
            it.setData(h.session_id, IdRole)
            it.setData(float(h.offset or 0.0), StartRole)
            it.setToolTip(f"{h.session_title} — {who}{h.snippet}")
            it.setEditable(False)
            self.model.appendRow(it)
        self.setCurrentWidget(self.view if self.hits else self.none)
        return len(self.hits)

    def choose(self, row: int) -> None:
        self._chosen(self.model.index(row, 0))

    def _chosen(self, index) -> None:
        if index.isValid():
            self.hit_chosen.emit(int(index.data(IdRole)), float(index.data(StartRole)))
