"""Suggestions while a speaker is renamed: the session's attendees first, then the saved voices.

``NameDelegate(names)`` edits a list item in a line edit with a completer over ``names()`` (called
when the editor opens, so a calendar imported meanwhile counts), matching anywhere in a name, any
case, in the order given (``app.pipeline.calendar.suggested_speaker_names``).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QLineEdit, QStyledItemDelegate, QWidget


class NameDelegate(QStyledItemDelegate):
    def __init__(self, names: Callable[[], list[str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.names = names
        self.completer: QCompleter | None = None  # the open editor's, for tests and the curious

    def createEditor(self, parent, option, index):  # noqa: N802 - Qt API
        editor = super().createEditor(parent, option, index)
        if isinstance(editor, QLineEdit):
            try:
                names = self.names()
            except Exception:  # noqa: BLE001 - no suggestions is still a rename
                names = []
            completer = QCompleter(QStringListModel(names, editor), editor)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
            editor.setCompleter(completer)
            editor.setAccessibleName("Speaker name")
            self.completer = completer
        return editor
