"""The Chat tab: questions about this meeting, answers streamed, [mm:ss] citations as links.

Each question is a model task (app.pipeline.chat.SessionChat.ask); the
conversation is kept in the library, and follow-ups reuse the model's
evaluated prefix, so only the new question is read. Screenshots selected in
the Screenshots tab go along with the question.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

from app.fmt import clock

from .tasks import FINISHED, Task
from .widgets import OneModelTask, button, line_edit


def linkify(text: str, duration: float | None = None) -> str:
    """HTML of an answer with each [mm:ss] citation a link ``t:SECONDS``."""
    from app.pipeline.chat import find_citations

    out, pos = [], 0
    for c in find_citations(text, duration):
        out.append(html.escape(text[pos:c.start_char]))
        out.append(f'<a href="t:{c.seconds:.2f}">{html.escape(text[c.start_char:c.end_char])}</a>')
        pos = c.end_char
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>")


class ChatTab(OneModelTask, QWidget):
    jump = Signal(float)
    task_started = Signal(object)
    message = Signal(str)

    def __init__(self, services, selected_media=lambda: [], parent=None):
        super().__init__(parent)
        self.services = services
        self.selected_media = selected_media
        self.session_id: int | None = None
        self.task: Task | None = None
        self._live_q = ""
        self._live_a = ""
        lay = QVBoxLayout(self)
        self.history = QTextBrowser()
        self.history.setAccessibleName("Chat history")
        self.history.setOpenLinks(False)
        self.history.anchorClicked.connect(self._link)
        lay.addWidget(self.history, 1)
        self.attached = QLabel()
        lay.addWidget(self.attached)
        row = QHBoxLayout()
        self.input = line_edit("Ask about this meeting…  (e.g. What did we decide about the budget?)",
                               "Question", self.send)
        row.addWidget(self.input, 1)
        self.think = QCheckBox("Think harder")
        self.think.setToolTip("Let the model reason before answering (slower; where the model supports it)")
        row.addWidget(self.think)
        self.send_button = button("Ask", "Ask the question", self.send)
        row.addWidget(self.send_button)
        lay.addLayout(row)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(50)
        self._render_timer.timeout.connect(self.redraw)

    def load(self, session_id: int | None) -> None:
        self.session_id = session_id
        self._live_q = self._live_a = ""
        self.redraw()
        self._sync()

    def _duration(self) -> float | None:
        if self.session_id is None:
            return None
        return self.services.library.get_session(self.session_id).duration or None

    def redraw(self) -> None:
        if self.services.closed:
            return
        parts = []
        if self.session_id is not None:
            dur = self._duration()
            for m in self.services.library.chat(self.session_id):
                if m.role == "user":
                    parts.append(f"<p><b>You:</b> {html.escape(m.content)}</p>")
                elif m.role == "assistant":
                    parts.append(f"<p><b>Minutely:</b> {linkify(m.content, dur)}</p>")
            if self._live_q:
                parts.append(f"<p><b>You:</b> {html.escape(self._live_q)}</p>")
                parts.append(f"<p><b>Minutely:</b> {linkify(self._live_a, dur) or '<i>thinking…</i>'}</p>")
            if not parts:
                parts.append("<p><i>Ask anything about this meeting. Answers cite the moments they rely "
                             "on; click a time to jump there.</i></p>")
        self.history.setHtml("".join(parts))
        sb = self.history.verticalScrollBar()
        sb.setValue(sb.maximum())
        n = len(self.selected_media())
        self.attached.setText(f"{n} screenshot(s) from the Screenshots tab go with the question" if n else "")

    def _sync(self) -> None:
        busy = self.running()
        self.send_button.setText("Stop" if busy else "Ask")
        self.send_button.setEnabled(self.session_id is not None)
        self.input.setEnabled(self.session_id is not None and not busy)

    def _link(self, url: QUrl) -> None:
        s = url.toString()
        if s.startswith("t:"):
            self.jump.emit(float(s[2:]))

    def send(self) -> Task | None:
        if self.stop_running():
            return None
        q = self.input.text().strip()
        if not q or self.session_id is None:
            return None
        return self.ask(q, think=self.think.isChecked())

    def ask(self, question: str, think: bool = False) -> Task:
        from app.pipeline.chat import SessionChat

        sid = self.session_id
        assert sid is not None  # the Ask button needs a session
        media = list(self.selected_media())
        image_tokens = self.services.settings.image_tokens

        video = bool(self.services.library.media(sid, "frame")) and not media and not think

        def run(ctx):
            if video:  # a video: the frames of the span asked about go with its transcript
                from app.pipeline.video import ask_video

                return ask_video(ctx.library, ctx.engine, sid, question, on_piece=ctx.piece)
            chat = SessionChat(ctx.library, ctx.engine, sid, image_tokens=image_tokens)
            return chat.ask(question, images=media, think=think, on_piece=ctx.piece)

        title = self.services.library.get_session(sid).title
        task = Task(f"Question about {title}", run, kind="ask", session_id=sid)
        self._live_q, self._live_a = question, ""
        task.piece.connect(lambda p: self._piece(sid, p))
        task.state_changed.connect(lambda st: self._done(sid, st))
        task.failed.connect(lambda msg: self.message.emit(f"No answer: {msg}"))
        self.input.clear()
        self.start_task(task)
        self.redraw()
        self._sync()
        return task

    def _piece(self, session_id: int, piece: str) -> None:
        if session_id == self.session_id:
            self._live_a += piece
            if not self._render_timer.isActive():
                self._render_timer.start()

    def _done(self, session_id: int, state: str) -> None:
        if state in FINISHED and session_id == self.session_id:
            self._live_q = self._live_a = ""
            self.redraw()
        self._sync()


__all__ = ["ChatTab", "linkify", "clock"]
