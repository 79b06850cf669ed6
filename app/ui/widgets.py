"""Small builders the views share: a named button, a named line edit, a message label, and the
"one model task at a time" behaviour of Ask / Summarize buttons that turn into Stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QProgressBar, QPushButton, QWidget

from .tasks import Task

# the languages offered by name (the settings' language and translation, "Transcribe again")
LANGUAGES = ("English", "German", "French", "Spanish", "Italian", "Portuguese", "Dutch", "Polish",
             "Swedish", "Danish", "Norwegian", "Finnish", "Czech", "Turkish", "Russian", "Ukrainian",
             "Greek", "Arabic", "Hebrew", "Hindi", "Japanese", "Korean", "Chinese", "Vietnamese",
             "Indonesian", "Thai")


def button(text: str, name: str, on_click: Callable | None = None, *, tip: str | None = None,
           checkable: bool = False) -> QPushButton:
    """A push button with its accessible name (and tooltip), connected to ``on_click``."""
    b = QPushButton(text)
    b.setAccessibleName(name)
    if tip:
        b.setToolTip(tip)
    b.setCheckable(checkable)
    if on_click is not None:
        (b.toggled if checkable else b.clicked).connect(on_click)
    return b


def line_edit(placeholder: str, name: str, on_return: Callable | None = None, text: str = "") -> QLineEdit:
    """A line edit with its placeholder and accessible name; Return calls ``on_return``."""
    e = QLineEdit(text)
    e.setPlaceholderText(placeholder)
    e.setAccessibleName(name)
    if on_return is not None:
        e.returnPressed.connect(on_return)
    return e


def message_label(name: str, *, selectable: bool = True, hidden: bool = True) -> QLabel:
    """A wrapped, selectable one-line-message label, hidden until it has something to say."""
    label = QLabel()
    label.setWordWrap(True)
    label.setAccessibleName(name)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setVisible(not hidden)
    return label


def progress_bar(name: str, *, hidden: bool = True) -> QProgressBar:
    """A 0..1000 progress bar with its accessible name (hidden until there is progress to show)."""
    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setAccessibleName(name)
    bar.setVisible(not hidden)
    return bar


def fit_height(window: QWidget) -> None:
    """Grow a dialog to the height its wrapped labels need at its width (Qt sizes a top-level
    window by its minimum size, which leaves height-for-width text clipped)."""
    lay = window.layout()
    if lay is not None and lay.hasHeightForWidth():
        need = lay.totalHeightForWidth(window.width())
        if need > window.height():
            window.resize(window.width(), need)


class FittingDialog(QDialog):
    """A dialog that grows to the height its wrapped labels need whenever its layout changes."""

    def event(self, e) -> bool:  # noqa: D401 - Qt API
        handled = super().event(e)
        if e.type() == QEvent.Type.LayoutRequest:
            fit_height(self)
        return handled


class OneModelTask:
    """For a view that runs one model task at a time (a question, a summary): ``self.task`` is the
    last one; its button says Stop while it runs. The view has ``services`` and a
    ``task_started`` signal (the Jobs panel lists what it reports)."""

    task: Task | None = None
    services: Any       # the host widget's
    task_started: Any   # the host widget's Signal(object)

    def running(self) -> bool:
        return self.task is not None and not self.task.finished

    def stop_running(self) -> bool:
        """Cancel the running task (the button said Stop); False when none runs."""
        if self.task is None or self.task.finished:  # running()
            return False
        self.task.cancel()
        return True

    def start_task(self, task: Task) -> Task:
        """Submit ``task`` (its signals already connected) to the model worker and report it."""
        self.task = task
        self.services.runner.submit_model(task)
        self.task_started.emit(task)
        return task


__all__ = ["button", "line_edit", "message_label", "progress_bar", "fit_height", "FittingDialog", "OneModelTask"]
