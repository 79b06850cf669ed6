"""The Summary tab: pick a template, watch the summary stream in, tick off action items.

The summary runs as a model task (app.pipeline.summarize); its text streams
into the view as the pipeline writes it to the library. Regenerating with
another template keeps the older summaries, listed in the "Version" box.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.library.models import JobKind

from .qmodels import local_time
from .tasks import FINISHED, Task, TaskState
from .widgets import OneModelTask, button


def cite_links(markdown: str, duration: float | None = None) -> str:
    """The summary's Markdown with each [mm:ss] citation a link ``t:SECONDS`` (shown as it was)."""
    from app.pipeline.chat import find_citations

    out, pos = [], 0
    for c in find_citations(markdown, duration):
        a, b, inner = c.start_char, c.end_char, markdown[c.start_char:c.end_char]
        pre = post = ""
        if a > 0 and markdown[a - 1] == "[" and markdown[b:b + 1] == "]":  # keep "[mm:ss]" as written
            a, b, pre, post = a - 1, b + 1, "\\[", "\\]"
        out += [markdown[pos:a], f"{pre}[{inner}](t:{c.seconds:.2f}){post}"]
        pos = b
    out.append(markdown[pos:])
    return "".join(out)


class SummaryTab(OneModelTask, QWidget):
    task_started = Signal(object)     # the Task, for the Jobs panel
    message = Signal(str)
    jump = Signal(float)              # a [mm:ss] citation was clicked: play from there

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.session_id: int | None = None
        lay = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Template"))
        self.template = QComboBox()
        self.template.setAccessibleName("Summary template")
        bar.addWidget(self.template)
        self.run_button = button("Summarize", "Summarize this session", self.toggle)
        bar.addWidget(self.run_button)
        bar.addStretch(1)
        bar.addWidget(QLabel("Version"))
        self.versions = QComboBox()
        self.versions.setAccessibleName("Summary version")
        self.versions.currentIndexChanged.connect(self._show_version)
        bar.addWidget(self.versions)
        self.edit_button = button("Edit", "Edit the summary", self._editing, checkable=True,
                                  tip="Edit the summary as Markdown; select text and hold F10 to edit it by voice")
        bar.addWidget(self.edit_button)
        lay.addLayout(bar)
        split = QSplitter(Qt.Orientation.Vertical)
        self.text = QTextBrowser()
        self.text.setAccessibleName("Summary")
        self.text.setOpenLinks(False)
        self.text.anchorClicked.connect(self._link)
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName("Summary (Markdown)")
        from .voice_edit import VoiceEditKey

        self.voice = VoiceEditKey(self.editor, services)  # hold F10 in the editor
        self.voice.message.connect(self.message)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.text)
        self.pages.addWidget(self.editor)
        split.addWidget(self.pages)
        items = QWidget()
        il = QVBoxLayout(items)
        il.setContentsMargins(0, 0, 0, 0)
        il.addWidget(QLabel("<b>Action items</b> (tick when done)"))
        self.items = QListWidget()
        self.items.setAccessibleName("Action items")
        self.items.itemChanged.connect(self._ticked)
        il.addWidget(self.items)
        split.addWidget(items)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay.addWidget(split, 1)
        self._loading = False
        self.load_templates()

    def load_templates(self) -> None:
        from app.pipeline.summary_templates import load_templates

        t = load_templates()
        self.template.clear()
        for tpl in t:
            self.template.addItem(tpl.title, tpl.name)
            self.template.setItemData(self.template.count() - 1, tpl.description, Qt.ItemDataRole.ToolTipRole)
        for notice in t.notices:
            self.message.emit(notice)

    # -- loading ---------------------------------------------------------------
    def load(self, session_id: int | None) -> None:
        if self.edit_button.isChecked():
            self.edit_button.setChecked(False)  # saves the edit of the session being left
        self.session_id = session_id
        self._fill_versions()
        self._sync_button()

    def _fill_versions(self, select: int | None = None) -> None:
        self._loading = True
        self.versions.clear()
        if self.session_id is not None:
            summaries = self.services.library.summaries.for_session(self.session_id)
            for s in sorted(summaries, key=lambda s: s.id, reverse=True):
                self.versions.addItem(f"{s.template} · {local_time(s.created)}", s.id)
        self._loading = False
        idx = self.versions.findData(select) if select is not None else 0
        self.versions.setCurrentIndex(max(idx, 0))
        self._show_version()

    def _show_version(self, *_):
        if self._loading or self.services.closed:
            return
        sid = self.versions.currentData()
        self.items.blockSignals(True)
        self.items.clear()
        if sid is None:
            self.text.setMarkdown("" if self.session_id is None else
                                  "*No summary yet.* Pick a template and press **Summarize**.")
            self.items.blockSignals(False)
            return
        lib = self.services.library
        self.text.setMarkdown(cite_links(lib.summaries.get(sid).text))
        for a in lib.summaries.action_items(sid):
            extra = ", ".join(x for x in (a.owner, f"due {a.due}" if a.due else None) if x)
            it = QListWidgetItem(a.text + (f" ({extra})" if extra else ""))
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if a.done else Qt.CheckState.Unchecked)
            it.setData(Qt.ItemDataRole.UserRole, a.id)
            self.items.addItem(it)
        self.items.blockSignals(False)

    def _ticked(self, item: QListWidgetItem) -> None:
        self.services.library.summaries.set_action_done(int(item.data(Qt.ItemDataRole.UserRole)),
                                              item.checkState() == Qt.CheckState.Checked)

    # -- editing ---------------------------------------------------------------
    def _editing(self, on: bool) -> None:
        sid = self.versions.currentData()
        if on:
            if sid is None or self.running():
                self.edit_button.setChecked(False)
                return
            self.editor.setPlainText(self.services.library.summaries.get(sid).text)
            self.pages.setCurrentWidget(self.editor)
            self.edit_button.setText("Save")
            self.editor.setFocus()
        else:
            if self.pages.currentWidget() is self.editor and sid is not None:
                self.services.library.summaries.write(sid, self.editor.toPlainText())
                self.message.emit("Summary saved.")
            self.pages.setCurrentWidget(self.text)
            self.edit_button.setText("Edit")
            self._show_version()

    # -- running ---------------------------------------------------------------
    def _sync_button(self) -> None:
        mine = self.task is not None and not self.task.finished and self.task.session_id == self.session_id
        self.run_button.setText("Stop" if mine else "Summarize")
        self.run_button.setEnabled(self.session_id is not None and (mine or not self.running()))

    def toggle(self) -> None:
        if not self.stop_running():
            self.summarize(self.template.currentData())

    def summarize(self, template: str) -> Task | None:
        if self.session_id is None:
            return None
        from app.pipeline.summarize import SummaryOptions, summarize

        sid = self.session_id
        title = self.services.library.get_session(sid).title
        model = self.services.settings.model_name or None

        def run(ctx):
            def progress(p):
                ctx.progress(p.fraction, p.stage)

            return summarize(ctx.library, lambda: ctx.engine, sid, template, SummaryOptions(model=model),
                             progress=progress, on_text=lambda _id, text: ctx.piece(text),
                             cancel=ctx.cancel_event)

        task = Task(f"Summarizing {title}", run, kind=JobKind.SUMMARIZE, session_id=sid,
                    retry=lambda: self.summarize(template))
        # partials of this tab's methods: a lambda naming ``task`` on its own signal would keep it for good
        task.piece.connect(partial(self._streamed, sid))
        task.done.connect(partial(self._summarized, sid))
        task.state_changed.connect(partial(self._finished, sid))
        task.failed.connect(lambda msg: self.message.emit(f"Summary failed: {msg}"))
        self.start_task(task)
        self._sync_button()
        return task

    def _streamed(self, session_id: int, text: str) -> None:
        if session_id == self.session_id and not self.services.closed:
            if self.versions.currentIndex() != 0 or self.versions.count() == 0 \
                    or self.versions.count() != len(self.services.library.summaries.for_session(session_id)):
                self._fill_versions()
            self.text.setMarkdown(cite_links(text))

    def _link(self, url) -> None:
        s = url.toString()
        if s.startswith("t:"):
            self.jump.emit(float(s[2:]))

    def _summarized(self, session_id: int, result) -> None:
        self._result: tuple[int, Any] | None = (session_id, result)

    def _finished(self, session_id: int, state: str) -> None:
        if self.services.closed:
            return
        if state in FINISHED and session_id == self.session_id:
            sid, result = getattr(self, "_result", (None, None))
            self._result = None
            result = result if sid == session_id and state == TaskState.DONE else None
            self._fill_versions(result.summary_id if result is not None else None)
        self._sync_button()
