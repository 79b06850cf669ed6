"""Correcting a transcript in the window: words in place, speakers, split, merge, find and replace,
undo and redo — the window half of ``lib.edits``.

- Double-click a segment (or F2) to edit its words in place: Enter saves, Esc cancels,
  Shift+Enter is a line break, Alt+Enter splits the segment at the cursor (the time in
  proportion to the text).
- Right-click a segment: its speaker (any speaker of the session, or a new one), the same for
  it and every later segment of its speaker, split, merge with the next one, the model's words
  back.
- Ctrl+H: find and replace in the session (whole word, match case), with the count as you type.
- Ctrl+Z / Ctrl+Shift+Z: undo and redo, their menu items named after what they would do.

Every write runs on the runner's pool with the worker's own connection, one at a time in the
order asked (a find-and-replace or its undo over a 4,000-segment meeting takes 0.3-0.4 s; a
one-row edit about 2 ms); the model then shows the stored rows as a diff, so only the changed
rows repaint and the scroll position and selection stay.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, QRect, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPlainTextEdit,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from app.fmt import clock, fine_clock, parse_clock
from app.library.edits import find_pattern, word_cut

from .delegates import SegmentDelegate
from .qmodels import IdRole, SegmentModel
from .widgets import LANGUAGES

log = logging.getLogger("minutely.ui.edit")


class SegmentEditor(QPlainTextEdit):
    """The in-place editor: Enter saves, Shift+Enter is a new line, Alt+Enter splits here."""

    commit = Signal()
    split_here = Signal(int)   # the cursor's position in the text

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt API
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if e.modifiers() & Qt.KeyboardModifier.AltModifier:
                self.split_here.emit(self.textCursor().position())
                return
            if not e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.commit.emit()
                return
        super().keyPressEvent(e)

    def contextMenuEvent(self, e) -> None:  # noqa: N802
        menu = self.createStandardContextMenu()
        menu.addSeparator()
        pos = self.cursorForPosition(e.pos()).position()
        menu.addAction("Split the segment here\tAlt+Enter", lambda: self.split_here.emit(pos))
        menu.exec(e.globalPos())


class EditingDelegate(SegmentDelegate):
    """The transcript's delegate with the in-place editor."""

    def __init__(self, view: QListView, on_split: Callable[[int, str, int], None]):
        super().__init__(view)
        self._on_split = on_split

    def createEditor(self, parent, option, index) -> QWidget:  # noqa: N802 - Qt API
        ed = SegmentEditor(parent)
        ed.setAccessibleName("Edit segment text")
        ed.setFrameShape(QPlainTextEdit.Shape.Box)
        ed.document().setDocumentMargin(2)
        ed.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        ed.commit.connect(lambda: self._finish(ed))
        seg_id = int(index.data(IdRole))
        ed.split_here.connect(lambda pos: self._split(ed, seg_id, pos))
        return ed

    def _finish(self, ed: SegmentEditor) -> None:
        self.commitData.emit(ed)
        self.closeEditor.emit(ed, QStyledItemDelegate.EndEditHint.NoHint)

    def _split(self, ed: SegmentEditor, seg_id: int, pos: int) -> None:
        text = " ".join(ed.toPlainText().split())
        # the cursor counted in the text as typed; count it in the text as stored (spaces folded)
        pos = len(" ".join(ed.toPlainText()[:pos].split())) + (1 if ed.toPlainText()[:pos][-1:].isspace() else 0)
        self.closeEditor.emit(ed, QStyledItemDelegate.EndEditHint.RevertModelCache)
        self._on_split(seg_id, text, pos)

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        editor.setPlainText(index.data(Qt.ItemDataRole.EditRole) or "")
        editor.moveCursor(editor.textCursor().MoveOperation.End)

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        model.setData(index, " ".join(editor.toPlainText().split()), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor, option, index) -> None:  # noqa: N802
        r = option.rect  # over the row's text (it scrolls inside if the words outgrow the row)
        top = r.top() + editor.fontMetrics().height() + self.PAD - 2
        h = max(r.bottom() - top, editor.fontMetrics().height() + 10)
        editor.setGeometry(QRect(r.left() + 14, top, r.width() - 18, h))


class TranscriptEditing(QObject):
    """The corrections of the open session: actions, the segment context menu and the write queue."""

    changed = Signal()        # words or speakers changed (the speakers panel reloads)
    message = Signal(str)     # one line for the status bar

    def __init__(self, services, view: QListView, model: SegmentModel, session_id: Callable[[], int | None],
                 position: Callable[[], float | None], parent: QWidget):
        super().__init__(parent)
        self.services, self.view, self.model = services, view, model
        self._session_id, self._position = session_id, position
        self._queue: deque[tuple[str, Callable[[Any], Any], Callable[[Any], None] | None,
                                 Callable[[Any, Any], list | None] | None]] = deque()
        self._task = None
        self.delegate = EditingDelegate(view, self.split_text)
        view.setItemDelegate(self.delegate)
        view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                             | QAbstractItemView.EditTrigger.EditKeyPressed)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._menu)
        model.text_edited.connect(self.edit_text)
        # a row whose words changed may need another height
        model.dataChanged.connect(lambda a, b, roles=(): None if roles else self.delegate.rows_changed(a, b))

        self.undo_action = QAction("&Undo", parent)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("&Redo", parent)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.triggered.connect(self.redo)
        self.replace_action = QAction("Find and &replace…", parent)
        self.replace_action.setShortcut(QKeySequence("Ctrl+H"))
        self.replace_action.triggered.connect(self.find_replace)
        self.edit_action = QAction("&Edit segment text", parent)
        self.edit_action.setShortcut(QKeySequence("F2"))
        self.edit_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # the list's own F2
        self.edit_action.triggered.connect(self.edit_current)
        self.actions = [self.undo_action, self.redo_action, self.replace_action]
        self._dialog: FindReplace | None = None
        self.update_labels()

    # -- state -----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A correction is being stored (or waits its turn)."""
        return self._task is not None or bool(self._queue)

    def update_labels(self) -> None:
        sid = self._session_id()
        und = red = None
        if sid is not None and not self.services.closed:
            und, red = self.services.library.edits.undo_redo(sid)
        self.undo_action.setText(f"&Undo {und}" if und else "&Undo")
        self.redo_action.setText(f"&Redo {red}" if red else "&Redo")
        self.undo_action.setEnabled(und is not None)
        self.redo_action.setEnabled(red is not None)
        self.replace_action.setEnabled(sid is not None)

    # -- the operations (each queued, run on the pool) ----------------------------------------------
    def edit_current(self) -> None:
        idx = self.view.currentIndex()
        if idx.isValid():
            self.view.edit(idx)

    def edit_text(self, seg_id: int, text: str) -> None:
        self._submit("Correct a segment", lambda lib: lib.edits.edit_segment(seg_id, text), rows=_same_one)

    def restore(self, seg_id: int) -> None:
        self._submit("Restore the model's words", lambda lib: lib.edits.restore_segment(seg_id), rows=_same_one)

    def set_speaker(self, seg_id: int, speaker: str, following: bool = False) -> None:
        self._submit("Change the speaker",
                     lambda lib: lib.edits.set_segment_speaker(seg_id, speaker, following=following),
                     rows=lambda lib, ids: [lib.segment(i) for i in ids])

    def rename_speaker(self, label: str, name: str, remember: bool = False) -> None:
        """Name a speaker (empty or its label: no name); ``remember``: also save the voice (a
        speaker without voice data is only named). Undoable, as every correction."""
        sid = self._session_id()
        name = name.strip()
        if sid is None:
            return

        def run(lib) -> None:
            if remember and name and name != label:
                from app.pipeline.speakers import save_voice

                try:
                    save_voice(lib, sid, label, name)
                    return
                except ValueError:  # no voice data yet: the name only
                    pass
            lib.edits.rename_speaker(sid, label, None if not name or name == label else name)

        self._submit("Rename a speaker", run, rows=lambda lib, _: [])

    def merge_speakers(self, label: str, into: str) -> None:
        """Give every segment of speaker ``label`` to ``into``; undoable."""
        sid = self._session_id()
        if sid is None:
            return
        self._submit("Merge speakers", lambda lib: lib.edits.merge_speakers(sid, label, into))

    def _split_pair(self, row: int) -> tuple[int, int] | None:
        """The rows of the split this row is a half of: it and the next one when it ends as the
        next one starts, else the previous one and it likewise; None when neither meets it."""
        def meet(a: int, b: int) -> bool:
            return 0 <= a and b < self.model.rowCount() and \
                abs(self.model.segment(a).end - self.model.segment(b).start) < 1e-6
        return (row, row + 1) if meet(row, row + 1) else (row - 1, row) if meet(row - 1, row) else None

    def adjust_split(self, first: int, second: int) -> None:
        """Ask for the time where rows ``first`` and ``second`` (two halves) meet, and move it
        there (undoable); a time outside the two is refused in one line."""
        a, b = self.model.segment(first), self.model.segment(second)
        text, ok = QInputDialog.getText(
            self.view, "Adjust split time",
            f"Where {clock(a.start)}–{clock(b.end)} is split (between {fine_clock(a.start)} and {fine_clock(b.end)}):",
            text=fine_clock(a.end))
        if not ok:
            return
        try:
            at = parse_clock(text)
        except ValueError as e:
            self.message.emit(str(e))
            return
        self._submit("Adjust a split time", lambda lib: lib.edits.move_split(a.id, at),
                     on_done=lambda _: self.message.emit(f"Split moved to {fine_clock(at)} (Ctrl+Z undoes it)"),
                     rows=lambda lib, pair: list(pair))

    def merge(self, seg_id: int) -> None:
        self._submit("Merge segments", lambda lib: lib.edits.merge_with_next(seg_id))

    def split_text(self, seg_id: int, text: str, at_char: int) -> None:
        """Split at a position of ``text`` (the editor's words, stored first if they changed)."""
        def run(lib):
            if text and text != lib.segment(seg_id).text:
                lib.edits.edit_segment(seg_id, text)
            return lib.edits.split_segment(seg_id, at_char)

        self._submit("Split a segment", run)

    def split(self, seg_id: int) -> None:
        """Split (not editing): at the playback position if it is inside the segment, else at the
        word nearest the middle; the time in proportion."""
        g = self.model.segment(self.model.row_of(seg_id))
        pos = self._position()
        if pos is not None and g.start < pos < g.end:
            at_char, at_seconds = word_cut(g.text, (pos - g.start) / (g.end - g.start)), pos
        else:
            at_char, at_seconds = word_cut(g.text, 0.5), None
        if at_char is None:
            self.message.emit("A segment of one word cannot be split")
            return
        self._submit("Split a segment", lambda lib: lib.edits.split_segment(seg_id, at_char, at_seconds))

    def replace(self, find: str, replace: str, whole_word: bool = True, case: bool = False,
                on_done: Callable[[Any], None] | None = None) -> None:
        sid = self._session_id()
        if sid is None:
            return
        self._submit("Find and replace", lambda lib: lib.edits.replace_in_session(
            sid, find, replace, whole_word=whole_word, case=case), on_done)

    def undo(self) -> None:
        sid = self._session_id()
        if sid is not None:
            self._submit("Undo", lambda lib: lib.edits.undo_step(sid), self._said("Undid"), rows=_put_back)

    def redo(self) -> None:
        sid = self._session_id()
        if sid is not None:
            self._submit("Redo", lambda lib: lib.edits.redo_step(sid), self._said("Redid"), rows=_put_back)

    def _said(self, verb: str) -> Callable[[Any], None]:
        return lambda step: self.message.emit(f"{verb}: {step.label}" if step else f"Nothing to {verb[:-1].lower()}o")

    def count(self, find: str, whole_word: bool = True, case: bool = False) -> tuple[int, int]:
        """Matches of ``find`` in the session as shown: (matches, segments)."""
        if not find.strip():
            return 0, 0
        pattern = find_pattern(find, whole_word=whole_word, case=case)
        hits = [len(pattern.findall(self.model.segment(r).text)) for r in range(self.model.rowCount())]
        return sum(hits), sum(1 for h in hits if h)

    def find_replace(self) -> FindReplace:
        if self._dialog is None:
            self._dialog = FindReplace(self, self.view.window())
        self._dialog.show()
        self._dialog.raise_()
        self._dialog.find_edit.setFocus()
        self._dialog.find_edit.selectAll()
        self._dialog.recount()
        return self._dialog

    # -- the queue ---------------------------------------------------------------------------------
    def _submit(self, title: str, fn: Callable[[Any], Any], on_done: Callable[[Any], None] | None = None,
                rows: Callable[[Any, Any], list | None] | None = None) -> None:
        """Queue a write ``fn(lib)``; then the model shows the rows ``rows(lib, result)`` read back
        (segments keeping their place: one row, a speaker's) or, by default or when that gives
        None, the whole session."""
        self._queue.append((title, fn, on_done, rows))
        self._next()

    def _next(self) -> None:
        sid = self._session_id()
        if self._task is not None or not self._queue or self.services.closed:
            return
        title, fn, on_done, changed_rows = self._queue.popleft()
        if sid is None:
            self._queue.clear()
            return

        shown = self.model.snapshot()
        measure = self.delegate.measurer()

        def work(ctx):
            lib = ctx.library
            result = fn(lib)
            some = changed_rows(lib, result) if changed_rows is not None else None
            if some is not None:  # and the new rows' heights, for the layout that follows
                return result, some, lib.speakers(sid), None, measure(g.text for g in some)
            rows = lib.segments(sid)  # and what changes, found here rather than on the UI thread
            diff = SegmentModel.diff(shown, rows)
            new = [rows[r].text for r in diff.changed] + [g.text for tag, _, _, j1, j2 in diff.ops
                                                          if tag != "equal" for g in rows[j1:j2]]
            return result, rows, lib.speakers(sid), diff, measure(new)

        def done(payload) -> None:
            self._task = None
            result, rows, speakers, diff, heights = payload
            if not self.services.closed and sid == self._session_id():
                self.delegate.prime(heights)
                if diff is None:
                    self.model.update_rows(rows, speakers)
                else:
                    self.model.apply(rows, speakers, diff)
                self.update_labels()
                self.changed.emit()
                if on_done is not None:
                    on_done(result)
            self._next()

        def failed(error: str) -> None:
            self._task = None
            self.message.emit(error)
            if not self.services.closed and sid == self._session_id():
                self.model.refresh()  # take back what the row showed before it was stored
                self.update_labels()
                self.changed.emit()   # and what the speakers panel shows
            self._next()

        self._task = self.services.runner.run(title, work, on_done=done, on_failed=failed, session_id=sid)

    # -- the context menu ----------------------------------------------------------------------------
    def _menu(self, pos) -> None:
        menu = self.menu_for(self.view.indexAt(pos))
        if menu is not None:
            menu.exec(self.view.viewport().mapToGlobal(pos))

    def menu_for(self, index) -> QMenu | None:
        if not index.isValid():
            return None
        row = index.row()
        g = self.model.segment(row)
        menu = QMenu(self.view)
        menu.addAction("Edit the words\tF2", lambda: self.view.edit(index))
        speakers = self.model.speakers()
        current = next((s for s in speakers if s.id == g.speaker_id), None)
        who = current.display if current else "no one"
        for title, following in (("Speaker", False), (f"Speaker of this and all following segments of {who}", True)):
            sub = menu.addMenu(title)
            for s in speakers:
                a = sub.addAction(s.display, self._call(self.set_speaker, g.id, s.label, following))
                a.setCheckable(True)
                a.setChecked(s.id == g.speaker_id)
            sub.addSeparator()
            sub.addAction("New speaker…", self._call(self._new_speaker, g.id, following))
        pos = self._position()
        inside = pos is not None and g.start < pos < g.end
        split = menu.addAction("Split at the playback position" if inside else "Split in the middle",
                               lambda: self.split(g.id))
        split.setEnabled(word_cut(g.text, 0.5) is not None)
        pair = self._split_pair(row)
        adjust = menu.addAction("Adjust split time…", lambda: self.adjust_split(*pair) if pair else None)
        adjust.setEnabled(pair is not None)
        adjust.setToolTip("Move the time where this segment and its other half meet")
        merge = menu.addAction("Merge with the next segment", lambda: self.merge(g.id))
        nxt = self.model.segment(row + 1) if row + 1 < self.model.rowCount() else None
        merge.setEnabled(nxt is not None and (g.speaker_id is None or nxt.speaker_id is None
                                              or g.speaker_id == nxt.speaker_id))
        if nxt is not None and not merge.isEnabled():
            merge.setText("Merge with the next segment (another speaker's: change a speaker first)")
        restore = menu.addAction("Restore the model's words", lambda: self.restore(g.id))
        restore.setEnabled(g.original_text is not None)
        again = menu.addMenu("Transcribe again")
        again.addAction("As the settings say", self._call(self.retranscribe, g.id, None))
        for lang in LANGUAGES[:10]:
            again.addAction(f"In {lang}", self._call(self.retranscribe, g.id, lang))
        again.addAction("In another language…", self._call(self._retranscribe_in, g.id))
        menu.addSeparator()
        menu.addAction(self.undo_action)
        menu.addAction(self.redo_action)
        menu.addAction(self.replace_action)
        return menu

    @staticmethod
    def _call(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        """A slot taking no arguments (a menu item's ``triggered`` would pass its checked state)."""
        def slot() -> None:
            fn(*args)

        return slot

    def retranscribe(self, seg_id: int, language: str | None) -> None:
        """Ask the model for this segment's words again (``language``: the speech's, else the
        settings'); a model task, so it waits behind a running transcription."""
        from app.pipeline.corrections import retranscribe_segment
        from app.pipeline.utterances import TranscribeOptions

        sid = self._session_id()
        opts = TranscribeOptions.from_settings(self.services.settings)
        if language:  # the language the speech is in: the words come back as spoken
            opts.language, opts.translate_to = language, None
        self.services.runner.run_model(
            "Transcribe a segment again",
            partial(_retranscribe_task, retranscribe_segment, seg_id, opts),
            on_done=self._retranscribed, on_failed=self.message.emit, session_id=sid)

    def _retranscribed(self, segment) -> None:
        if not self.services.closed:  # the row is read back through the write queue, in order
            self._submit("Show the segment transcribed again", lambda lib: None,
                         on_done=lambda _: self.message.emit("The segment was transcribed again "
                                                             "(Undo takes it back)"),
                         rows=lambda lib, _: [lib.segment(segment.id)])

    def _retranscribe_in(self, seg_id: int) -> None:
        lang, ok = QInputDialog.getText(self.view, "Transcribe again", "The language the speech is in:")
        if ok and lang.strip():
            self.retranscribe(seg_id, lang.strip())

    def _new_speaker(self, seg_id: int, following: bool) -> None:
        name, ok = QInputDialog.getText(self.view, "New speaker", "Name of the speaker:")
        if ok and name.strip():
            self.set_speaker(seg_id, name.strip(), following)


def _same_one(lib, seg) -> list:
    return [lib.segment(seg.id)]


def _put_back(lib, step) -> list | None:
    """The segments an undo or redo put back, when they kept their places (a find-and-replace
    taken back re-reads its 1,700 rows, not the 4,000 of the session); None: read the session."""
    return lib.segments_by_id(step.segments) if step is not None and step.in_place else None


class FindReplace(QDialog):
    """Find and replace within the session: the count as you type, one undo step."""

    def __init__(self, editing: TranscriptEditing, parent=None):
        super().__init__(parent)
        self.editing = editing
        self.setWindowTitle("Find and replace")
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.find_edit = QLineEdit()
        self.find_edit.setAccessibleName("Find")
        self.replacement = QLineEdit()
        self.replacement.setAccessibleName("Replace with")
        form.addRow("Find:", self.find_edit)
        form.addRow("Replace with:", self.replacement)
        lay.addLayout(form)
        self.whole_word = QCheckBox("Whole words")
        self.whole_word.setChecked(True)
        self.case = QCheckBox("Match case")
        lay.addWidget(self.whole_word)
        lay.addWidget(self.case)
        self.count_label = QLabel()
        self.count_label.setAccessibleName("Matches")
        lay.addWidget(self.count_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.replace_button = buttons.addButton("Replace all", QDialogButtonBox.ButtonRole.ApplyRole)
        self.replace_button.clicked.connect(self.replace_all)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        for w in (self.find_edit, self.replacement):
            w.textChanged.connect(self.recount)
        self.find_edit.returnPressed.connect(self.replace_all)
        self.whole_word.toggled.connect(self.recount)
        self.case.toggled.connect(self.recount)
        self.resize(380, self.sizeHint().height())

    def recount(self) -> int:
        n, segs = self.editing.count(self.find_edit.text(), self.whole_word.isChecked(), self.case.isChecked())
        self.count_label.setText(f"{n} match{'es' if n != 1 else ''} in {segs} segment{'s' if segs != 1 else ''}"
                                 if self.find_edit.text().strip() else "")
        self.replace_button.setEnabled(n > 0)
        return n

    def replace_all(self) -> None:
        if not self.find_edit.text().strip() or not self.recount():
            return
        self.replace_button.setEnabled(False)
        self.editing.replace(self.find_edit.text(), self.replacement.text(), self.whole_word.isChecked(),
                             self.case.isChecked(), on_done=self._replaced)

    def _replaced(self, n: int) -> None:
        self.recount()
        self.count_label.setText(f"Replaced {n} match{'es' if n != 1 else ''} (Ctrl+Z undoes it)")
        self.editing.message.emit(f"Replaced {n} match{'es' if n != 1 else ''}")


def _retranscribe_task(fn, seg_id: int, opts, ctx):
    return fn(ctx.library, ctx.engine, seg_id, opts, ctx.cancel_event)
