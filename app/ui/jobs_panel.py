"""The Jobs panel: what is running or queued, its progress, cancel and retry.

Every Task a widget hands it appears here, from either lane of the runner
(model work and pool work alike): a cancelled queued task says "cancelled" at once. A failed job says what
happened in one line and offers Retry (a fresh task doing the same work; a
transcription resumes after its last stored utterance). Jobs a previous run
left unfinished are listed too, with Retry.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from app.library.models import JobState

from .tasks import CANCELLED, DONE, FAILED, FINISHED, RUNNING, Task
from .widgets import progress_bar


class JobRow(QWidget):
    retry_requested = Signal(object)   # the row
    removed = Signal(object)

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        text = QVBoxLayout()
        self.title = QLabel(title)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state = QLabel()
        self.state.setWordWrap(True)
        text.addWidget(self.title)
        text.addWidget(self.state)
        lay.addLayout(text, 3)
        self.bar = progress_bar(f"Progress of {title}", hidden=False)
        self.bar.setTextVisible(True)
        lay.addWidget(self.bar, 2)
        self.cancel = QPushButton("Cancel")
        self.cancel.setAccessibleName(f"Cancel {title}")
        self.retry = QPushButton("Retry")
        self.retry.setAccessibleName(f"Retry {title}")
        self.retry.hide()
        self.retry.clicked.connect(lambda: self.retry_requested.emit(self))
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.setAccessibleName(f"Dismiss {title}")
        self.dismiss.hide()
        self.dismiss.clicked.connect(lambda: self.removed.emit(self))
        lay.addWidget(self.cancel)
        lay.addWidget(self.retry)
        lay.addWidget(self.dismiss)
        self.task: Task | None = None
        self.retry_fn: Callable[[], Task | None] | None = None

    def follow(self, task: Task) -> None:
        """Show ``task``: its signals go to this row's own methods (no lambda holds the task: one
        connected to the task's own signal would keep it alive for good)."""
        self.task = task
        self.cancel.clicked.connect(task.cancel)
        task.progress.connect(self.set_progress)
        task.message.connect(self._message)
        task.state_changed.connect(self._task_state)
        self.set_state(task.state)

    def _message(self, text: str) -> None:
        self.state.setText(f"running: {text}")

    def _task_state(self, state: str) -> None:
        self.set_state(state, self.task.error if self.task is not None else "")

    def set_progress(self, fraction: float) -> None:
        self.bar.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.bar.setFormat(f"{100 * fraction:.0f}%")

    def set_state(self, state: str, error: str = "") -> None:
        self.state.setText(f"{state}: {error}" if error else state)
        finished = state in FINISHED or state == JobState.INTERRUPTED
        self.cancel.setVisible(not finished)
        self.retry.setVisible(state in (FAILED, CANCELLED, JobState.INTERRUPTED) and self.retry_fn is not None)
        self.dismiss.setVisible(finished)
        if state == DONE:
            self.set_progress(1.0)


class JobsPanel(QWidget):
    retry = Signal(object)   # the Task or library Job to redo

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel("No jobs. Imported files and recordings are transcribed here.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.empty)
        area = QScrollArea()
        area.setWidgetResizable(True)
        inner = QWidget()
        self.rows_layout = QVBoxLayout(inner)
        self.rows_layout.addStretch(1)
        area.setWidget(inner)
        outer.addWidget(area, 1)
        self.rows: list[JobRow] = []
        self.setAccessibleName("Jobs")

    def add_task(self, task: Task, retry: Callable[[], Task | None] | None = None) -> JobRow:
        row = JobRow(task.title)
        row.retry_fn = retry or task.retry_fn
        row.follow(task)
        self._add(row)
        return row

    def add_interrupted(self, title: str, error: str, progress: float,
                        retry: Callable[[], Task | None]) -> JobRow:
        row = JobRow(title)
        row.retry_fn = retry
        row.set_progress(progress)
        row.set_state(JobState.INTERRUPTED, error)
        self._add(row)
        return row

    def _add(self, row: JobRow) -> None:
        row.retry_requested.connect(self._retry)
        row.removed.connect(self._remove)
        self.rows_layout.insertWidget(self.rows_layout.count() - 1, row)
        self.rows.append(row)
        self.empty.hide()

    def _retry(self, row: JobRow) -> None:
        fn = row.retry_fn
        self._remove(row)
        if fn is not None:
            fn()

    def _remove(self, row: JobRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self.empty.setVisible(not self.rows)

    def active(self) -> list[Task]:
        return [r.task for r in self.rows if r.task is not None and r.task.state in (RUNNING,) ]
