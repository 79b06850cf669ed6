"""Voice edit for any text field: the selection + a spoken or typed instruction -> a previewed replacement.

The one implementation of voice editing: the dictation pad (with its own inline
preview) and every other editable text field of the app (a summary, a
transcript segment) use it. The headless step is ``app.pipeline.dictate.
edit_selection``; this module is the Qt side:

    ed = voice_edit_selection(text_edit, services, instruction_text="shorter")
    ed = voice_edit_selection(text_edit, services, instruction_audio=samples)
    VoiceEditKey(text_edit, services)   # hold F10 in that field and speak

The selection (its start, end and text) is taken when the edit is asked for.
The model gets it with the instruction in ONE call (``app.pipeline.dictate.
voice_edit``: the instruction as audio, the answer constrained to JSON
``{"text": ...}``), on the model worker. The replacement is shown in a
preview; Accept replaces exactly that span as ONE undo step, and is refused
if the text there changed meanwhile. Nothing touches the field before Accept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from .listener import HoldsAListener, Listener
from .tasks import Task

log = logging.getLogger("minutely.ui.voice_edit")

EDIT_KEY = Qt.Key.Key_F10
PARA = "\u2029"  # how QTextCursor.selectedText() writes a line break


def _plain(selected: str) -> str:
    return selected.replace(PARA, "\n")


def clean_replacement(text: str) -> str:
    """Line breaks as \\n (what a text field holds) and no control characters."""
    from app.pipeline.dictate import clean_text

    return clean_text(text)


def selection_of(text_edit: QPlainTextEdit | QTextEdit) -> tuple[int, int, str] | None:
    """(start, end, plain text) of the field's selection, None without one."""
    c = text_edit.textCursor()
    if not c.hasSelection():
        return None
    return c.selectionStart(), c.selectionEnd(), _plain(c.selectedText())


def apply_replacement(text_edit: QPlainTextEdit | QTextEdit, start: int, end: int, selection: str,
                      replacement: str) -> bool:
    """Replace [start, end) with ``replacement`` as one undo step, only if it still holds ``selection``."""
    doc = text_edit.document()
    if end > doc.characterCount() - 1:
        return False
    c = QTextCursor(doc)
    c.setPosition(start)
    c.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    if _plain(c.selectedText()) != selection:
        return False
    c.beginEditBlock()
    c.insertText(replacement)  # keeps the character format at the start of the selection
    c.endEditBlock()
    c.setPosition(start)
    c.setPosition(start + len(replacement), QTextCursor.MoveMode.KeepAnchor)
    text_edit.setTextCursor(c)
    return True


class EditPreview(QDialog):
    """The proposed replacement, with Accept and Discard (non-modal: the field stays visible)."""

    def __init__(self, replacement: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Voice edit")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Replace the selection with:"))
        self.text = QPlainTextEdit(replacement)
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Proposed replacement")
        lay.addWidget(self.text)
        self.buttons = QDialogButtonBox()
        self.accept_button = self.buttons.addButton("Accept", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button = self.buttons.addButton("Discard", QDialogButtonBox.ButtonRole.RejectRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.accept_button.setDefault(True)


class VoiceEdit(QObject):
    """One voice edit of one field's selection: ask -> preview -> accept (one undo step) or discard.

    ``preview``: True shows the preview dialog, False applies at once, a function ``show(text)``
    shows it its own way (the dictation pad's inline preview) and the caller later calls
    ``accept()`` or ``discard()``. ``confirm`` (replacement -> bool) asks instead."""

    ready = Signal(str)        # the replacement, shown in the preview
    applied = Signal(str)      # accepted and put in place
    discarded = Signal()
    failed = Signal(str)       # one line: nothing heard, no model, the text changed meanwhile...
    message = Signal(str)      # each step above as a line for a status bar

    def __init__(self, text_edit: QPlainTextEdit | QTextEdit, services, span: tuple[int, int, str], *,
                 preview: bool | Callable[[str], None] = True, confirm: Callable[[str], bool] | None = None):
        super().__init__(text_edit)
        self.text_edit, self.services = text_edit, services
        self.start, self.end, self.selection = span
        self.use_preview = preview
        self.confirm = confirm  # asks instead of the preview dialog: True accepts
        self.replacement: str | None = None
        self.preview: EditPreview | None = None
        self.task: Task | None = None

    def submit(self, instruction_audio: np.ndarray | None, instruction_text: str | None) -> Task:
        from app.pipeline.dictate import edit_selection

        sel = self.selection

        def run(ctx):
            ctx.check()  # silence is refused before the model is even loaded
            return edit_selection(lambda: ctx.engine, sel, instruction_audio=instruction_audio,
                                  instruction_text=instruction_text)

        self.task = Task("Voice edit", run, kind="edit")
        self.task.done.connect(self._done)
        self.task.failed.connect(self._fail)
        return self.services.runner.submit_model(self.task)

    def _fail(self, msg: str) -> None:
        msg = msg[:1].upper() + msg[1:]
        self.failed.emit(msg)
        self.message.emit(msg if msg.endswith(".") else msg + ".")
        self._over()

    def _over(self) -> None:
        """Applied, discarded, failed or dropped: its task (and with it the instruction's audio) is
        let go, instead of staying for as long as the field lives (this edit is the field's child;
        it is not deleted here: whoever connected to its signals may still hold it)."""
        self.task = None

    def _ready(self, replacement: str) -> None:
        self.ready.emit(replacement)
        self.message.emit("Accept the replacement, or discard it.")

    def drop(self) -> None:
        """Superseded by another edit: cancel it quietly, show nothing more."""
        self._dropped = True
        self.replacement = None
        self._close_preview()
        if self.task is not None:
            self.task.cancel()
        self._over()

    _dropped = False

    def _done(self, replacement: str) -> None:
        if getattr(self.services, "closed", False) or self._dropped:
            return
        self.replacement = replacement = clean_replacement(replacement)
        if self.confirm is not None:
            self._ready(replacement)
            self.accept() if self.confirm(replacement) else self.discard()
            return
        if callable(self.use_preview):
            self.use_preview(replacement)
            self._ready(replacement)
            return
        if not self.use_preview:
            self.accept()
            return
        self.preview = EditPreview(replacement, self.text_edit.window())
        self.preview.accepted.connect(self.accept)
        self.preview.rejected.connect(self.discard)
        self.preview.show()
        self._ready(replacement)

    def accept(self) -> bool:
        """Put the replacement in place of exactly the selection it was made for (one undo step)."""
        if self.replacement is None:
            return False
        rep, self.replacement = self.replacement, None
        self._close_preview()
        if not apply_replacement(self.text_edit, self.start, self.end, self.selection, rep):
            self._fail("The text changed meanwhile; the edit was not applied")
            return False
        self.applied.emit(rep)
        self.message.emit("Replaced. Ctrl+Z undoes it.")
        self._over()
        return True

    def discard(self) -> None:
        if self.replacement is None:
            return
        self.replacement = None
        self._close_preview()
        self.discarded.emit()
        self.message.emit("Discarded.")
        self._over()

    def _close_preview(self) -> None:
        p, self.preview = self.preview, None
        if p is not None:
            for sig in (p.accepted, p.rejected):
                try:
                    sig.disconnect()
                except (RuntimeError, TypeError):
                    pass
            p.close()
            p.deleteLater()


def voice_edit_selection(text_edit: QPlainTextEdit | QTextEdit, services, *,
                         instruction_text: str | None = None, instruction_audio: np.ndarray | None = None,
                         preview: bool = True) -> VoiceEdit:
    """Edit the field's current selection by a typed or spoken instruction (exactly one of them).

    Returns the VoiceEdit at once (the model works on the model worker). Without a selection, in a
    read-only field or with an empty instruction, it fails at once: ``failed`` is emitted after the
    caller could connect, and ``task`` stays None."""
    span = selection_of(text_edit)
    ed = VoiceEdit(text_edit, services, span or (0, 0, ""), preview=preview)
    why = None
    if text_edit.isReadOnly():
        why = "This text cannot be edited here"
    elif span is None or not span[2].strip():
        why = "Select the text to edit first"
    elif instruction_audio is None and not (instruction_text or "").strip():
        why = "Say or type what to do with the selection"
    if why is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, ed, lambda: ed._fail(why))
        return ed
    ed.submit(instruction_audio, None if instruction_audio is not None else (instruction_text or "").strip())
    return ed


class VoiceEditKey(HoldsAListener, QObject):
    """Hold F10 in a text field and say what to do with its selection; the preview follows.

    Records the settings' microphone through the Listener (the meetings' Recorder, a
    temporary folder) the dictation pad uses too. ``message`` carries one line for a status bar. ``confirm``
    (replacement -> bool) asks instead of the preview dialog."""

    message = Signal(str)
    started = Signal(object)   # the VoiceEdit, once the instruction was heard
    edit_ready = Signal(str)   # a replacement to accept or discard

    def __init__(self, text_edit: QPlainTextEdit | QTextEdit, services, recorder_factory=None,
                 confirm: Callable[[str], bool] | None = None, *, key: Qt.Key = EDIT_KEY,
                 preview: bool = True):
        super().__init__(text_edit)
        self.text_edit, self.services, self.factory = text_edit, services, recorder_factory
        self.key, self.preview, self.confirm = key, preview, confirm
        self.listener = None
        self.edit: VoiceEdit | None = None
        self._span: tuple[int, int, str] | None = None
        text_edit.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        t = event.type()
        if t in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == self.key:
            if not event.isAutoRepeat():
                self.press() if t == QEvent.Type.KeyPress else self.release()
            return True
        return super().eventFilter(obj, event)

    def press(self) -> bool:
        if self.listener is not None:
            return False
        if self.text_edit.isReadOnly():
            self.message.emit("This text cannot be edited here.")
            return False
        self._span = selection_of(self.text_edit)
        if self._span is None or not self._span[2].strip():
            self.message.emit("Select the text to edit first, then hold F10 and say what to do.")
            return False
        listener = Listener(self.services, self.factory, mode="edit")
        try:
            listener.start()
        except RuntimeError as e:
            self.message.emit(f"Cannot listen: {e}")
            return False
        self.listener = listener
        listener.finished.connect(self._heard)
        listener.failed.connect(self._listen_failed)
        listener.ready.connect(self._listening)
        self.message.emit("Opening the microphone… speak when it says Listening.")
        return True

    def release(self) -> None:
        self._release_listener()

    def _listening(self, listener: Listener) -> None:
        if listener is self.listener:
            self.message.emit("Listening for the edit… release F10 when done.")

    def _heard(self, _listener: Listener, audio) -> None:
        span, self._span = self._span, None
        if audio is None or span is None or getattr(self.services, "closed", False):
            return
        ed = VoiceEdit(self.text_edit, self.services, span, preview=self.preview, confirm=self.confirm)
        ed.message.connect(self.message)  # signal to signal: nothing holds the edit or this key
        ed.ready.connect(self.edit_ready)
        self.edit = ed
        ed.submit(np.asarray(audio, np.float32), None)
        self.started.emit(ed)

    begin, end = press, release  # the names the dictation pad's keys use

    def shutdown(self) -> None:
        self.release()


__all__ = ["voice_edit_selection", "VoiceEdit", "VoiceEditKey", "EditPreview", "apply_replacement",
           "selection_of"]
