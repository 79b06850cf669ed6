"""Ask across all meetings: the model searches the library with read-only tools, then answers.

A non-modal window (Tools > Ask all meetings…, Ctrl+Shift+A). The answer
streams in; the searches and transcripts the model looked at are listed
underneath, and double-clicking one opens that session at that time.
"""

from __future__ import annotations

import html
import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QTextBrowser, QVBoxLayout

from .tasks import FINISHED, Task, TaskState
from .widgets import OneModelTask, button, line_edit


class LibraryAskDialog(OneModelTask, QDialog):
    open_session = Signal(int, float)
    task_started = Signal(object)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.setWindowTitle("Ask all meetings")
        self._answer = ""
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.input = line_edit("e.g. What did we decide about the budget last month?",
                               "Question about all meetings", self.send)
        row.addWidget(self.input, 1)
        self.button = button("Ask", "Ask", self.send)
        row.addWidget(self.button)
        lay.addLayout(row)
        self.answer = QTextBrowser()
        self.answer.setAccessibleName("Answer")
        lay.addWidget(self.answer, 3)
        lay.addWidget(QLabel("What the model looked at (double-click to open):"))
        self.calls = QListWidget()
        self.calls.setAccessibleName("Searches and transcripts read")
        self.calls.itemActivated.connect(self._open)
        lay.addWidget(self.calls, 1)
        self.resize(640, 520)

    def send(self) -> Task | None:
        if self.stop_running():
            return None
        q = self.input.text().strip()
        return self.ask(q) if q else None

    def ask(self, question: str) -> Task:
        from app.pipeline.tools import ask_library

        def run(ctx):
            return ask_library(ctx.library, ctx.engine, question, on_piece=ctx.piece,
                               on_tool=ctx.note)

        task = Task("Question about all meetings", run, kind="ask")
        self._answer = ""
        self.answer.setPlainText("Searching the library…")
        self.calls.clear()
        task.piece.connect(self._piece)
        task.state_changed.connect(self._state)
        task.failed.connect(lambda msg: self.answer.setPlainText(f"No answer: {msg}"))
        task.note.connect(self._call)
        self.start_task(task)
        self.button.setText("Stop")
        return task

    def _piece(self, text: str) -> None:
        self._answer += text
        self.answer.setPlainText(self._answer)

    def _call(self, call) -> None:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (call.arguments or {}).items())
        it = QListWidgetItem(f"{call.name}({args})" + (f" — {call.error}" if call.error else ""))
        sid = (call.arguments or {}).get("session_id")
        if isinstance(sid, int):
            start = (call.arguments or {}).get("start") or 0
            it.setData(Qt.ItemDataRole.UserRole, (sid, float(start) if isinstance(start, (int, float)) else 0.0))
        it.setToolTip(html.escape(str(call.result)[:2000]) if call.result is not None else "")
        self.calls.addItem(it)

    def _open(self, item: QListWidgetItem) -> None:
        target = item.data(Qt.ItemDataRole.UserRole)
        if target:
            self.open_session.emit(int(target[0]), float(target[1]))

    def _state(self, state: str) -> None:
        if state in FINISHED:
            self.button.setText("Ask")
            if state == TaskState.DONE and not self._answer.strip():
                self.answer.setPlainText("The model gave no answer.")
