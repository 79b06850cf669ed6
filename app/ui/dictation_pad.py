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

Audio comes from the microphone in the settings through the same Recorder
the meetings use (a temporary folder, removed after), so device names,
PulseAudio sources and unplugged devices behave the same way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (QApplication, QCheckBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from .tasks import Task
from .voice_edit import VoiceEditKey as VoiceEdit  # noqa: F401  F10 in any other field (the summary editor)

log = logging.getLogger("minutely.ui.dictation")

TALK_KEY, EDIT_KEY = Qt.Key.Key_F9, Qt.Key.Key_F10


class Listener(QObject):
    """Records the microphone into memory while a key is held (and cuts utterances in continuous mode)."""

    utterance = Signal(object, float, float)  # one utterance (continuous mode): audio, start, end (s)
    finished = Signal(object)       # np.ndarray of everything heard (or None on failure)
    failed = Signal(str)
    ready = Signal()                # the first audio arrived: speech from now on is heard

    def __init__(self, services, recorder_factory=None, continuous: bool = False):
        super().__init__()
        self.services = services
        self.factory = recorder_factory
        self.continuous = continuous
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="dictation-", dir=services.data_dir))
        self._seg = None
        self._offset = 0                # stream position of _blocks[0] (continuous mode drops cut audio)
        self._got_audio = False
        self.recorder = None
        self.result = None              # the RecordingResult: continuous mode keeps its WAV (see stop)

    def start(self) -> None:
        from app.capture.recorder import Recorder

        mic = self.services.settings.mic_device or "default"
        make = self.factory or (lambda folder, mic, on_audio: Recorder(folder, mic=mic, system=None,
                                                                        on_audio=on_audio))
        if self.continuous:
            from app.media.vad import Segmenter

            self._seg = Segmenter()
        self.recorder = make(self._folder / "rec", mic, self._on_audio)
        try:
            self.recorder.start()
        except Exception as e:  # noqa: BLE001 - no microphone: one line
            self._cleanup()
            raise RuntimeError(" ".join(str(e).split()) or type(e).__name__) from None

    def _on_audio(self, track: str, position: int, x: np.ndarray) -> None:  # recorder's writer thread
        if not self._got_audio:
            self._got_audio = True
            self.ready.emit()
        with self._lock:
            self._blocks.append(np.asarray(x, np.float32).reshape(-1).copy())
            if self._seg is not None:
                for u in self._seg.push(x):
                    self._emit_utterance(u)

    def _emit_utterance(self, u) -> None:
        """Cut one utterance out of the blocks, then drop the blocks before its end: the next
        utterance starts after it, so a long continuous dictation keeps only the audio not yet cut
        (concatenating everything heard for each utterance grew without bound)."""
        a, b = int(u.start * 16000) - self._offset, int(u.end * 16000) - self._offset
        pos, parts, keep = 0, [], 0
        for i, blk in enumerate(self._blocks):
            lo, hi = pos, pos + len(blk)
            if hi > a and lo < b:
                parts.append(blk[max(0, a - lo):b - lo])
            if hi <= b:
                keep = i + 1
            pos = hi
        self.utterance.emit(np.concatenate(parts) if parts else np.zeros(0, np.float32), u.start, u.end)
        dropped = self._blocks[:keep]
        del self._blocks[:keep]
        self._offset += sum(len(x) for x in dropped)

    def stop(self) -> None:
        """Stop off the UI thread; `finished` brings the audio. In continuous mode the take's
        recording stays on disk for the session (``result``) until ``discard_files()``."""
        def run():
            keep = False
            try:
                if self.recorder is not None:
                    self.result = self.recorder.stop()
                    keep = self.continuous
                with self._lock:
                    audio = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
                    if self._seg is not None:
                        for u in self._seg.flush():
                            self._emit_utterance(u)
                self.finished.emit(audio)
            except Exception as e:  # noqa: BLE001
                keep = False
                self.failed.emit(" ".join(str(e).split()) or type(e).__name__)
                self.finished.emit(None)
            finally:
                if not keep:
                    self._cleanup()

        threading.Thread(target=run, name="minutely-dictation-stop", daemon=True).start()

    def recording(self) -> Path | None:
        """The take's WAV (continuous mode, after stop)."""
        tracks = getattr(self.result, "tracks", None) or {}
        return tracks.get("mic") or next(iter(tracks.values()), None)

    def _cleanup(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    discard_files = _cleanup


def require_speech(audio: np.ndarray, what: str = "nothing was heard") -> None:
    """NothingHeard for a recording without speech, on the worker *before* ``ctx.engine`` is
    touched: silence never loads the model (seconds to a minute for the real one)."""
    from app.pipeline.dictate import NothingHeard, speech_spans

    if not len(audio) or not speech_spans(audio):
        raise NothingHeard(f"{what} (the recording has no speech)")


class DictationPad(QWidget):
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
        self._edit_range: tuple[int, int, str] | None = None
        self._pending_edit: tuple[int, int, str, str] | None = None
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
        self.continuous = QPushButton("Continuous")
        self.continuous.setToolTip("Keep listening; each sentence is inserted as you finish it")
        self.continuous.setCheckable(True)
        self.continuous.setAccessibleName("Continuous dictation")
        self.continuous.toggled.connect(self._continuous)
        bar.addWidget(self.continuous)
        bar.addStretch(1)
        self.copy = QPushButton("Copy")
        self.copy.clicked.connect(self.copy_text)
        self.send = QPushButton("Send to app")
        self.send.setToolTip("Copy, then paste into the window you used before Minutely (X11)")
        self.send.clicked.connect(self.send_to_app)
        lay.addLayout(bar)
        opts = QHBoxLayout()
        self.fillers = QCheckBox("Remove filler words")
        self.fillers.setChecked(True)
        self.punct = QCheckBox("Spoken punctuation")
        self.punct.setChecked(True)
        self.punct.setToolTip('Say "comma", "period", "new paragraph"…')
        self.language = QLineEdit(services.settings.language)
        self.language.setPlaceholderText("Language (auto)")
        self.language.setAccessibleName("Dictation language")
        self.translate = QLineEdit(services.settings.translate_to)
        self.translate.setPlaceholderText("Translate to (off)")
        self.translate.setAccessibleName("Translate dictation to")
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
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("Or type what to do with the selection (e.g. make it shorter)")
        self.instruction.setAccessibleName("Typed edit instruction")
        self.instruction.returnPressed.connect(self.typed_edit)
        instr.addWidget(self.instruction, 1)
        apply = QPushButton("Edit selection")
        apply.clicked.connect(self.typed_edit)
        instr.addWidget(apply)
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
        self.accept_button = QPushButton("Accept")
        self.accept_button.clicked.connect(self.accept_edit)
        self.discard_button = QPushButton("Discard")
        self.discard_button.clicked.connect(self.discard_edit)
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
            c = self.editor.textCursor()
            if not c.hasSelection():
                self.message.emit("Select the text to edit first, then hold F10 and say what to do.")
                return False
            self._edit_range = (c.selectionStart(), c.selectionEnd(), c.selectedText().replace("\u2029", "\n"))
        listener = Listener(self.services, self.recorder_factory, continuous=(mode == "continuous"))
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
        listener.utterance.connect(self._utterance)
        listener.finished.connect(lambda audio, m=mode, lst=listener: self._heard(m, audio, lst))
        listener.failed.connect(lambda msg: self.message.emit(f"Recording failed: {msg}"))
        # PulseAudio takes 0.3-2 s to deliver the first audio; words said before that are lost,
        # so "Listening" shows only once the microphone really hears
        listener.ready.connect(lambda m=mode, lst=listener: self._listening(m, lst))
        self.message.emit("Opening the microphone… speak when it says Listening.")
        return True

    def _listening(self, mode: str, listener: "Listener") -> None:
        if listener is self.listener:
            self.message.emit({"talk": "Listening… release F9 when done.",
                               "edit": "Listening for the edit… release F10 when done.",
                               "continuous": "Listening… each sentence is inserted as you finish it."}[mode])

    def end(self) -> None:
        if self.listener is None or self.mode == "continuous":
            return
        self._stop_listener()

    def _stop_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            self.message.emit("Working…")
            listener.stop()

    def _continuous(self, on: bool) -> None:
        if on:
            if not self.begin("continuous"):
                self.continuous.setChecked(False)
        elif self.mode == "continuous":
            self._stop_listener()

    def _utterance(self, audio, start: float, end: float) -> None:
        self._utterances += 1
        self._dictate(audio, (start, end))

    def _heard(self, mode: str, audio, listener: Listener | None = None) -> None:
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
        from app.pipeline.dictate import dictate, save_dictation

        opts = self.options()
        take = self._take if span is not None else None

        def run(ctx):
            require_speech(audio)
            d = dictate(ctx.engine, audio, opts)
            if d.text and take is not None:
                take.add(ctx.library, span[0], span[1], d.text)
            elif d.text:
                save_dictation(ctx.library, audio, d.text, opts)
            return d

        task = Task("Dictation", run, kind="dictate")
        task.done.connect(lambda d: self.insert(d.text))
        task.failed.connect(self._failed)
        return self._submit(task)

    def _edit(self, rng: tuple[int, int, str], audio=None, text: str | None = None) -> Task:
        from app.pipeline.dictate import voice_edit

        start, end, selection = rng

        def run(ctx):
            if audio is not None:
                require_speech(audio, "no instruction was heard")
            return voice_edit(ctx.engine, selection, instruction_audio=audio, instruction_text=text)

        task = Task("Voice edit", run, kind="edit")
        task.done.connect(lambda e: self._show_edit(start, end, selection, e.text))
        task.failed.connect(self._failed)
        return self._submit(task)

    def _finish_take(self, take, listener: Listener | None) -> Task | None:
        """After the take's last utterance (same worker, queued after it): its recording becomes
        the session's audio, or is deleted if nothing was written."""
        if take is None or listener is None:
            return None
        duration = getattr(listener.result, "duration", None)

        def run(ctx):
            try:
                return take.finish(ctx.library, listener.recording(), duration)
            finally:
                listener.discard_files()

        task = Task("Dictation audio", run, kind="dictate", needs_model=False)
        task.failed.connect(self._failed)
        self.services.model.submit(task)
        return task

    def _submit(self, task: Task) -> Task:
        self._busy += 1
        task.state_changed.connect(self._task_state)
        self.services.model.submit(task)
        self.task_started.emit(task)
        return task

    def _task_state(self, state: str) -> None:
        from .tasks import WAITING

        if state in ("done", "failed", "cancelled"):
            self._busy = max(0, self._busy - 1)
        elif state == WAITING:
            self.message.emit("No model yet: set one up in Tools ▸ Model…; this goes on once it is ready.")

    def _failed(self, msg: str) -> None:
        from app.pipeline.dictate import NothingHeard  # noqa: F401  (its text is the message)

        self.message.emit(msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else "."))

    def typed_edit(self) -> Task | None:
        c = self.editor.textCursor()
        text = self.instruction.text().strip()
        if not c.hasSelection():
            self.message.emit("Select the text to edit first.")
            return None
        if not text:
            self.message.emit("Type what to do with the selection.")
            return None
        rng = (c.selectionStart(), c.selectionEnd(), c.selectedText().replace("\u2029", "\n"))
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
        if before and not before.isspace() and before != "\u2029" and not text[:1] in ",.;:!?)":
            text = " " + text
        c.beginEditBlock()
        c.insertText(text)
        c.endEditBlock()
        self.editor.setTextCursor(c)
        self.message.emit("Inserted.")
        self.inserted.emit(text)

    def _show_edit(self, start: int, end: int, selection: str, replacement: str) -> None:
        self._pending_edit = (start, end, selection, replacement)
        self.preview.setPlainText(replacement)
        self.preview_box.show()
        self.message.emit("Accept the replacement, or discard it.")
        self.edit_ready.emit(replacement)

    def accept_edit(self) -> bool:
        """Replace exactly the selection the edit was made for, as one undo step."""
        if self._pending_edit is None:
            return False
        start, end, selection, replacement = self._pending_edit
        self._pending_edit = None
        self.preview_box.hide()
        c = QTextCursor(self.editor.document())
        c.setPosition(start)
        c.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        if c.selectedText().replace("\u2029", "\n") != selection:
            self.message.emit("The text changed meanwhile; the edit was not applied.")
            return False
        c.beginEditBlock()
        c.insertText(replacement)
        c.endEditBlock()
        self.editor.setTextCursor(c)
        self.message.emit("Replaced. Ctrl+Z undoes it.")
        return True

    def discard_edit(self) -> None:
        self._pending_edit = None
        self.preview_box.hide()
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
