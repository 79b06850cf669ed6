"""The dictation pad: hold a key to talk, release to get the text at the cursor; voice-edit a selection.

- Hold F9 (or the Talk button) and speak; on release the speech goes to the
  model (a model task) and the text is inserted at the cursor, as one undo
  step. "Continuous" cuts long dictation into utterances with the VAD and
  inserts each as it is ready.
- Select text, hold F10 (or the Voice edit button) and say what to do ("make
  this more formal", "translate to Spanish"): the selection and the spoken
  instruction go to the model in one call; the replacement is previewed and
  Accept puts it in place of exactly that selection, as one undo step. A
  typed instruction works the same way.
- Every dictation is kept in the library as a session of kind "dictation".
- Copy, and "Send to app": the text goes to the clipboard and, on X11,
  Minutely minimizes and pastes it (Ctrl+V through XTEST) into the window
  that had the focus before. A push-to-talk key outside the app is
  ``global_keys.PadGlobalKey`` (X11 only: Wayland forbids it; see there).

Audio comes from the microphone in the settings through ``listener.Listener``
(the same Recorder the meetings use). A voice edit here is ``voice_edit.
VoiceEdit`` (the one implementation every text field uses) with this pad's
inline preview.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .listener import HoldsAListener, Listener
from .tasks import FINISHED, WAITING, Task
from .voice_edit import VoiceEdit, selection_of
from .widgets import button, line_edit

log = logging.getLogger("minutely.ui.dictation")

TALK_KEY, EDIT_KEY = Qt.Key.Key_F9, Qt.Key.Key_F10


class DictationPad(HoldsAListener, QWidget):
    inserted = Signal(str)          # text put at the cursor
    edit_ready = Signal(str)        # a replacement waiting in the preview
    message = Signal(str)
    task_started = Signal(object)

    def __init__(self, services, recorder_factory=None, parent=None):
        super().__init__(parent)
        self.services = services
        self.recorder_factory = recorder_factory
        self.listener: Listener | None = None
        self.mode: str | None = None           # "talk", "edit", "continuous"
        self._edit_range: tuple[int, int, str] | None = None  # the selection an F10 hold is for
        self._voice_edit: VoiceEdit | None = None  # the edit in the preview (or on its way)
        self._busy = 0
        self._utterances = 0
        self._take = None
        lay = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.talk = QPushButton("Talk (hold F9)")
        self.talk.setAccessibleName("Hold to talk")
        self.talk.pressed.connect(lambda: self.begin("talk"))
        self.talk.released.connect(self.end)
        bar.addWidget(self.talk)
        self.voice_edit_button = QPushButton("Voice edit (hold F10)")
        self.voice_edit_button.setAccessibleName("Hold to edit the selection by voice")
        self.voice_edit_button.pressed.connect(lambda: self.begin("edit"))
        self.voice_edit_button.released.connect(self.end)
        bar.addWidget(self.voice_edit_button)
        self.continuous = button("Continuous", "Continuous dictation", self._continuous, checkable=True,
                                 tip="Keep listening; each sentence is inserted as you finish it")
        bar.addWidget(self.continuous)
        bar.addStretch(1)
        self.copy = button("Copy", "Copy the text", self.copy_text)
        self.send = button("Send to app", "Send the text to the previous app", self.send_to_app,
                           tip="Copy, then paste into the window you used before Minutely (X11)")
        lay.addLayout(bar)
        opts = QHBoxLayout()
        self.fillers = QCheckBox("Remove filler words")
        self.fillers.setChecked(True)
        self.punct = QCheckBox("Spoken punctuation")
        self.punct.setChecked(True)
        self.punct.setToolTip('Say "comma", "period", "new paragraph"…')
        self.language = line_edit("Language (auto)", "Dictation language", text=services.settings.language)
        self.translate = line_edit("Translate to (off)", "Translate dictation to",
                                   text=services.settings.translate_to)
        opts.addWidget(self.fillers)
        opts.addWidget(self.punct)
        opts.addStretch(1)
        lay.addLayout(opts)
        langs = QHBoxLayout()
        langs.addWidget(self.language)
        langs.addWidget(self.translate)
        lay.addLayout(langs)
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName("Dictation pad")
        self.editor.setPlaceholderText("Hold F9 and speak. Select text and hold F10 to edit it by voice.")
        self.editor.installEventFilter(self)
        lay.addWidget(self.editor, 1)
        instr = QHBoxLayout()
        self.instruction = line_edit("Or type what to do with the selection (e.g. make it shorter)",
                                     "Typed edit instruction", self.typed_edit)
        instr.addWidget(self.instruction, 1)
        instr.addWidget(button("Edit selection", "Edit the selection as typed", self.typed_edit))
        lay.addLayout(instr)
        self.preview_box = QWidget()
        pl = QVBoxLayout(self.preview_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("<b>Replace the selection with:</b>"))
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setAccessibleName("Proposed replacement")
        self.preview.setMaximumHeight(self.fontMetrics().height() * 8)
        pl.addWidget(self.preview)
        pb = QHBoxLayout()
        self.accept_button = button("Accept", "Accept the replacement", self.accept_edit)
        self.discard_button = button("Discard", "Discard the replacement", self.discard_edit)
        pb.addStretch(1)
        pb.addWidget(self.discard_button)
        pb.addWidget(self.accept_button)
        pl.addLayout(pb)
        self.preview_box.hide()
        lay.addWidget(self.preview_box)
        foot = QHBoxLayout()
        self.status = QLabel("")
        self.status.setAccessibleName("Dictation status")
        self.status.setWordWrap(True)
        foot.addWidget(self.status, 1)
        foot.addWidget(self.copy)
        foot.addWidget(self.send)
        lay.addLayout(foot)
        self.message.connect(self.status.setText)

    # -- keys ------------------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() in (TALK_KEY, EDIT_KEY):
            if not event.isAutoRepeat():
                if event.type() == QEvent.Type.KeyPress:
                    self.begin("talk" if event.key() == TALK_KEY else "edit")
                else:
                    self.end()
            return True
        return super().eventFilter(obj, event)

    # -- listening -------------------------------------------------------------
    def options(self):
        from app.pipeline.dictate import DictationOptions

        return DictationOptions(language=self.language.text().strip() or None,
                                translate_to=self.translate.text().strip() or None,
                                remove_fillers=self.fillers.isChecked(), spoken_punctuation=self.punct.isChecked())

    def begin(self, mode: str) -> bool:
        if self.listener is not None:
            return False
        if mode == "edit":
            span = selection_of(self.editor)
            if span is None:
                self.message.emit("Select the text to edit first, then hold F10 and say what to do.")
                return False
            self._edit_range = span
        listener = Listener(self.services, self.recorder_factory, continuous=(mode == "continuous"), mode=mode)
        try:
            listener.start()
        except RuntimeError as e:
            self.message.emit(f"Cannot listen: {e}")
            return False
        self.listener, self.mode = listener, mode
        self._utterances = 0  # cut by the VAD in this continuous take
        if mode == "continuous":
            from app.pipeline.dictate import DictationTake

            self._take = DictationTake(self.options())  # one session for the whole take
        # bound methods only: the listener's signals name it, no lambda holds it
        listener.utterance.connect(self._utterance)
        listener.finished.connect(self._heard)
        listener.failed.connect(self._listen_failed)
        # PulseAudio takes 0.3-2 s to deliver the first audio; words said before that are lost,
        # so "Listening" shows only once the microphone really hears
        listener.ready.connect(self._listening)
        self.message.emit("Opening the microphone… speak when it says Listening.")
        return True

    def _listening(self, listener: Listener) -> None:
        if listener is self.listener:
            self.message.emit({"talk": "Listening… release F9 when done.",
                               "edit": "Listening for the edit… release F10 when done.",
                               "continuous": "Listening… each sentence is inserted as you finish it."}[listener.mode])

    def end(self) -> None:
        if self.listener is None or self.mode == "continuous":
            return
        self._release_listener()

    def _continuous(self, on: bool) -> None:
        if on:
            if not self.begin("continuous"):
                self.continuous.setChecked(False)
        elif self.mode == "continuous":
            self._release_listener()

    def _utterance(self, audio, start: float, end: float) -> None:
        self._utterances += 1
        self._dictate(audio, (start, end))

    def _heard(self, listener: Listener, audio) -> None:
        mode = listener.mode
        self.mode = None if self.listener is None else self.mode
        if audio is None:
            return
        if mode == "talk":
            self._dictate(audio)
        elif mode == "edit":
            rng, self._edit_range = self._edit_range, None
            if rng is not None:
                self._edit(rng, audio=audio)
        elif mode == "continuous":
            if not self._utterances:
                self.message.emit("Nothing was heard.")
            self._finish_take(self._take, listener)

    # -- model tasks -----------------------------------------------------------
    def _dictate(self, audio: np.ndarray, span: tuple[float, float] | None = None) -> Task:
        """Dictate one take (push-to-talk: its own session) or one utterance of a continuous take
        (``span`` on the take's timeline: a segment of the take's session)."""
        from app.pipeline.dictate import dictate, require_speech, save_dictation

        opts = self.options()
        take = self._take if span is not None else None

        def run(ctx):
            require_speech(audio)  # silence never loads the model
            d = dictate(ctx.engine, audio, opts)
            if d.text and take is not None:
                take.add(ctx.library, span[0], span[1], d.text)
            elif d.text:
                save_dictation(ctx.library, audio, d.text, opts)
            return d

        task = Task("Dictation", run, kind="dictate")
        task.done.connect(self._dictated)
        task.failed.connect(self._failed)
        self._track(task)
        return self.services.runner.submit_model(task)

    def _dictated(self, d) -> None:
        self.insert(d.text)

    def _edit(self, rng: tuple[int, int, str], audio=None, text: str | None = None) -> Task:
        """The voice edit every text field uses, previewed in this pad (Accept / Discard below)."""
        if self._voice_edit is not None:
            self._voice_edit.drop()
        ed = VoiceEdit(self.editor, self.services, rng, preview=self._show_edit)
        ed.message.connect(self.message)
        self._voice_edit = ed
        task = ed.submit(None if audio is None else np.asarray(audio, np.float32), text)
        self._track(task)
        return task

    def _finish_take(self, take, listener: Listener | None) -> Task | None:
        """After the take's last utterance (same worker, queued after it): its recording becomes
        the session's audio, or is deleted if nothing was written."""
        if take is None or listener is None:
            return None
        duration = getattr(listener.result, "duration", None)
        recording, discard = listener.recording(), listener.discard_files

        def run(ctx):
            try:
                return take.finish(ctx.library, recording, duration)
            finally:
                discard()

        task = Task("Dictation audio", run, kind="dictate", needs_model=False)
        task.failed.connect(self._failed)
        return self.services.runner.submit_model(task)

    def _track(self, task: Task) -> None:
        """Count it as busy until it ends, say when it waits for a model (before it is submitted)."""
        self._busy += 1
        task.state_changed.connect(self._task_state)
        self.task_started.emit(task)

    def _task_state(self, state: str) -> None:
        if state in FINISHED:
            self._busy = max(0, self._busy - 1)
        elif state == WAITING:
            self.message.emit("No model yet: set one up in Tools ▸ Model…; this goes on once it is ready.")

    def _failed(self, msg: str) -> None:
        self.message.emit(msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else "."))

    def typed_edit(self) -> Task | None:
        rng = selection_of(self.editor)
        text = self.instruction.text().strip()
        if rng is None:
            self.message.emit("Select the text to edit first.")
            return None
        if not text:
            self.message.emit("Type what to do with the selection.")
            return None
        self.instruction.clear()
        return self._edit(rng, text=text)

    # -- applying ----------------------------------------------------------------
    def insert(self, text: str) -> None:
        """Put dictated text at the cursor (one undo step), with a space where words would touch."""
        if not text:
            self.message.emit("Nothing was heard.")
            return
        c = self.editor.textCursor()
        if c.hasSelection():
            c.setPosition(c.selectionEnd())
        before = self.editor.document().characterAt(c.position() - 1) if c.position() > 0 else ""
        if before and not before.isspace() and before != "\u2029" and text[:1] not in ",.;:!?)":
            text = " " + text
        c.beginEditBlock()
        c.insertText(text)
        c.endEditBlock()
        self.editor.setTextCursor(c)
        self.message.emit("Inserted.")
        self.inserted.emit(text)

    def _show_edit(self, replacement: str) -> None:
        """The VoiceEdit's preview, here: the text below the pad with Accept and Discard."""
        self.preview.setPlainText(replacement)
        self.preview_box.show()
        self.edit_ready.emit(replacement)

    def accept_edit(self) -> bool:
        """Replace exactly the selection the edit was made for, as one undo step."""
        ed, self._voice_edit = self._voice_edit, None
        self.preview_box.hide()
        return ed is not None and ed.accept()

    def discard_edit(self) -> None:
        ed, self._voice_edit = self._voice_edit, None
        self.preview_box.hide()
        if ed is not None and ed.replacement is not None:
            ed.discard()
        else:
            self.message.emit("Discarded.")

    # -- getting text out -------------------------------------------------------
    def _text_out(self) -> str:
        c = self.editor.textCursor()
        return c.selectedText().replace("\u2029", "\n") if c.hasSelection() else self.editor.toPlainText()

    def copy_text(self) -> None:
        QApplication.clipboard().setText(self._text_out())
        self.message.emit("Copied.")

    def send_to_app(self) -> None:
        from .global_keys import global_key_support, paste_keystroke

        QApplication.clipboard().setText(self._text_out())
        if global_key_support()[0]:  # X11: Ctrl+V through XTEST once the previous window has the focus
            self.window().showMinimized()
            QTimer.singleShot(400, lambda: self._paste(paste_keystroke))
            self.message.emit("Sent to the window that had the focus.")
        else:
            self.message.emit("Copied: paste it with Ctrl+V where you want it (automatic pasting works on "
                              "X11 only).")

    def _paste(self, paste_keystroke) -> None:
        try:
            paste_keystroke()
        except Exception as e:  # noqa: BLE001 - the display went away: the text is on the clipboard
            self.message.emit(f"Copied: paste it with Ctrl+V ({e}).")

    def shutdown(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
