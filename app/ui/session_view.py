"""One session: its title, transcript, speakers, screenshots, summary and chat.

The transcript is a model/view list (speaker colour, name, time, text) that
grows in place while a job or a live recording adds segments; clicking a
segment plays the audio from there (the player bar above it: play/pause, seek
bar coloured by speaker, speed), and the segment being played is highlighted
and followed. Its words, speakers and bounds are corrected in place
(transcript_edit.py). Speakers are renamed inline (optionally remembering the
voice for later sessions) or merged from their context menu.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.fmt import clock
from app.library.db import NotFound
from app.library.models import SessionState

from .player_bar import PlayerBar
from .qmodels import SegmentModel, describe, speaker_colour
from .transcript_edit import TranscriptEditing

log = logging.getLogger("minutely.ui.session")

READ_ON_POOL = 1000   # sessions with more segments are read on the runner's pool

EXPORT_FORMATS = [("Markdown (.md)", "md"), ("Plain text (.txt)", "txt"), ("Subtitles (.srt)", "srt"),
                  ("Web subtitles (.vtt)", "vtt"), ("JSON (.json)", "json")]


class SpeakersPanel(QWidget):
    """The session's speakers: double-click (or F2) to rename, right-click to merge. Both are
    asked of the session view (``rename_requested``, ``merge_requested``), which stores them as
    undoable corrections."""

    rename_requested = Signal(str, str, bool)   # label, name ("": none), remember the voice
    merge_requested = Signal(str, str)          # label, into label

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.session_id: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Speakers</b>")
        lay.addWidget(title)
        self.list = QListWidget()
        self.list.setAccessibleName("Speakers")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemChanged.connect(self._renamed)
        from .speaker_names import NameDelegate

        self.list.setItemDelegate(NameDelegate(self.suggestions, self.list))  # attendees, then known voices
        lay.addWidget(self.list, 1)
        self.remember = QCheckBox("Remember voices I name")
        self.remember.setToolTip("Naming a speaker saves their voice, so later sessions recognise them")
        self.remember.setChecked(True)
        lay.addWidget(self.remember)
        self._loading = False

    def load(self, session_id: int | None) -> None:
        self.session_id = session_id
        self._loading = True
        self.list.clear()
        if session_id is not None:
            sp = self.services.library.speakers(session_id)
            for i, s in enumerate(sorted(sp, key=lambda s: s.label)):
                it = QListWidgetItem(s.display)
                it.setData(Qt.ItemDataRole.UserRole, s.label)
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsEditable)
                pm = QPixmap(12, 12)
                pm.fill(speaker_colour(s.label, i))
                it.setIcon(QIcon(pm))
                it.setToolTip(f"{s.label}" + (" · known voice" if s.profile_id else "")
                              + " · double-click to rename, right-click to merge")
                self.list.addItem(it)
        self._signature = self.current_signature()
        self._loading = False

    def suggestions(self) -> list[str]:
        """Names to offer while renaming: the session's attendees first, then the saved voices."""
        if self.session_id is None:
            return []
        from app.pipeline.calendar import suggested_speaker_names

        return suggested_speaker_names(self.services.library, self.session_id)

    def signature(self) -> tuple:
        """What the list shows now (labels and names), to skip reloading an unchanged list."""
        return getattr(self, "_signature", ())

    def current_signature(self) -> tuple:
        if self.session_id is None:
            return ()
        return tuple((s.label, s.display, s.profile_id) for s in
                     sorted(self.services.library.speakers(self.session_id), key=lambda s: s.label))

    def _renamed(self, item: QListWidgetItem) -> None:
        if self._loading or self.session_id is None:
            return
        self.rename_requested.emit(item.data(Qt.ItemDataRole.UserRole), item.text().strip(),
                                   self.remember.isChecked())

    def rename(self, label: str, name: str) -> None:
        """Programmatic rename (as if typed in the list)."""
        for i in range(self.list.count()):
            it = self.list.item(i)
            if it.data(Qt.ItemDataRole.UserRole) == label:
                it.setText(name)
                return
        raise KeyError(label)

    def merge(self, label: str, into: str) -> None:
        if self.session_id is not None:
            self.merge_requested.emit(label, into)

    def _menu(self, pos) -> None:
        it = self.list.itemAt(pos)
        if it is None:
            return
        label = it.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(it))
        sub = menu.addMenu("Merge into")
        for i in range(self.list.count()):
            other = self.list.item(i)
            if other is not it:
                def merge_into(o: str = other.data(Qt.ItemDataRole.UserRole)) -> None:  # noqa: B008 - bound now
                    self.merge(label, o)

                sub.addAction(other.text(), merge_into)
        sub.setEnabled(self.list.count() > 1)
        menu.exec(self.list.viewport().mapToGlobal(pos))


class SessionView(QWidget):
    """The right-hand side of the window for the selected session."""

    play_requested = Signal(int, float)      # session id, seconds
    export_requested = Signal(int, str)      # session id, format
    title_changed = Signal(int)
    status_message = Signal(str)
    task_started = Signal(object)            # a Task for the Jobs panel

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.session_id: int | None = None
        self._opening = 0   # counts show_session calls: a pool read applies only if still the latest
        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        self.title = QLineEdit()
        self.title.setAccessibleName("Session title")
        self.title.setPlaceholderText("Untitled")
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.3)
        f.setBold(True)
        self.title.setFont(f)
        self.title.setFrame(False)
        self.title.editingFinished.connect(self._save_title)
        head.addWidget(self.title, 1)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export session")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for text, fmt in EXPORT_FORMATS:
            a = QAction(text, menu)
            a.triggered.connect(lambda _=False, f=fmt: self.session_id and self.export_requested.emit(
                self.session_id, f))
            menu.addAction(a)
        self.export_button.setMenu(menu)
        head.addWidget(self.export_button)
        lay.addLayout(head)
        self.meta = QLabel()
        self.meta.setAccessibleName("Session details")
        lay.addWidget(self.meta)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        lay.addWidget(self.tabs, 1)

        # transcript + speakers
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setObjectName("transcriptSplitter")
        self.segments = SegmentModel(services.library, self)
        self.transcript = QListView()
        self.transcript.setAccessibleName("Transcript")
        self.transcript.setModel(self.segments)
        self.transcript.setWordWrap(True)
        self.transcript.setResizeMode(QListView.ResizeMode.Adjust)
        self.transcript.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # laid out in batches between events: a 4,000-segment session opens without freezing. Each
        # row's height is a call into Python (the delegate's sizeHint) that may wait for the
        # interpreter lock while a worker runs Python, so batches are small (50 rows: the 3-hour
        # test's largest gaps while playing and scrolling went from 41-58 ms at 200 to 21-32 ms)
        self.transcript.setLayoutMode(QListView.LayoutMode.Batched)
        self.transcript.setBatchSize(50)
        self.transcript.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.transcript.activated.connect(self._play_index)
        self.transcript.clicked.connect(self._play_index)
        self.player_bar = PlayerBar(services)
        self.player_bar.message.connect(self.status_message)
        self.player_bar.position_changed.connect(self._playing_at)
        self.player_bar.follow_requested.connect(self.follow_playback)
        self.editing = TranscriptEditing(services, self.transcript, self.segments, lambda: self.session_id,
                                         self._split_position, self)
        self.editing.message.connect(self.status_message)
        self.editing.changed.connect(self._edited)
        self.transcript.addAction(self.editing.edit_action)
        self._follow = True
        self.transcript.verticalScrollBar().actionTriggered.connect(self._user_scrolled)
        for keys, slot in (("Space", self.player_bar.toggle), ("Ctrl+Left", lambda: self.player_bar.skip(-5.0)),
                           ("Ctrl+Right", lambda: self.player_bar.skip(5.0))):
            a = QAction(self)
            a.setShortcut(QKeySequence(keys))
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            a.triggered.connect(slot)
            self.addAction(a)
        self._spans_timer = QTimer(self)
        self._spans_timer.setSingleShot(True)
        self._spans_timer.setInterval(300)
        self._spans_timer.timeout.connect(self._load_spans)
        for sig in (self.segments.rowsInserted, self.segments.rowsRemoved, self.segments.modelReset):
            sig.connect(self._spans_timer.start)
        self.empty_transcript = QLabel()
        self.empty_transcript.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_transcript.setWordWrap(True)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.player_bar)
        ll.addWidget(self.empty_transcript)
        ll.addWidget(self.transcript, 1)
        split.addWidget(left)
        self.speakers = SpeakersPanel(services)
        self.speakers.rename_requested.connect(self.editing.rename_speaker)
        self.speakers.merge_requested.connect(self.editing.merge_speakers)
        split.addWidget(self.speakers)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        self.splitter = split
        self.tabs.addTab(split, "Transcript")

        from .summary_tab import SummaryTab

        self.summary = SummaryTab(services)
        self.summary.task_started.connect(self.task_started)
        self.summary.message.connect(self.status_message)
        self.summary.jump.connect(self.play_at)
        self.tabs.addTab(self.summary, "Summary")

        from .chat_tab import ChatTab

        self.chat = ChatTab(services, self.selected_media)
        self.chat.task_started.connect(self.task_started)
        self.chat.message.connect(self.status_message)
        self.chat.jump.connect(self.play_at)
        self.tabs.addTab(self.chat, "Chat")

        # screenshots and frames on a timeline
        self.shots = QListWidget()
        self.shots.setAccessibleName("Screenshots")
        self.shots.setViewMode(QListWidget.ViewMode.IconMode)
        self.shots.setIconSize(QSize(192, 120))
        self.shots.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.shots.setMovement(QListWidget.Movement.Static)
        self.shots.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.shots.itemSelectionChanged.connect(lambda: self.chat.redraw())
        self.shots.itemActivated.connect(self._shot_activated)
        self.tabs.addTab(self.shots, "Screenshots")
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(250)
        self._refresh_timer.timeout.connect(self.refresh)

    # -- loading ---------------------------------------------------------------
    def show_session(self, session_id: int | None, at: float | None = None) -> None:
        self.session_id = session_id
        self._opening += 1
        if session_id is not None and self.services.library.segment_count(session_id) > READ_ON_POOL:
            self._read_on_pool(session_id, at)
            at = None
        else:
            self.segments.load(session_id)
        self._load_spans()
        self.editing.update_labels()
        self.speakers.load(session_id)
        self._load_header()
        self._load_shots()
        self._update_empty()
        self.summary.load(session_id)
        self.chat.load(session_id)
        if at is not None:
            self.jump_to(at)

    def _read_on_pool(self, session_id: int, at: float | None) -> None:
        """A long session's rows are read on the runner's pool (4,000 segments: ~20 ms of Python
        that would stall the window) and shown with one model reset when they arrive."""
        self.segments.begin_load(session_id)
        token = self._opening

        def work(ctx):
            rows = ctx.library.segments(session_id)
            return rows, ctx.library.speakers(session_id), [g.start for g in rows]

        def done(payload) -> None:
            if token != self._opening or self.session_id != session_id or self.services.closed:
                return  # another session was opened meanwhile
            self.segments.set_rows(*payload)
            self._load_spans()
            self._update_empty()
            self.refresh_soon()   # anything a job stored after the read
            if at is not None:
                self.jump_to(at)
            elif self.player_bar.playing:
                self._playing_at(self.player_bar.position)

        def failed(error: str) -> None:
            if token == self._opening and not self.services.closed:
                self.segments.loading = False
                self.status_message.emit(f"Could not read the transcript: {error}")

        self.services.runner.run("Open a session", work, on_done=done, on_failed=failed, session_id=session_id)

    @property
    def loading(self) -> bool:
        """The open session's transcript is still being read (a long one is read on the pool)."""
        return self.segments.loading

    def refresh_soon(self, session_id: int | None = None) -> None:
        """Coalesce bursts of changes (a job storing segments) into one refresh."""
        if session_id is None or session_id == self.session_id:
            if not self._refresh_timer.isActive():
                self._refresh_timer.start()

    def refresh(self) -> None:
        if self.session_id is None or self.services.closed:
            return
        try:
            self.services.library.get_session(self.session_id)
        except NotFound:
            self.show_session(None)
            return
        follow = self._at_bottom()
        if self.segments.refresh():
            self._spans_timer.start()
        if self.speakers.list.state() != QAbstractItemView.State.EditingState and \
                self.speakers.signature() != self.speakers.current_signature():
            self.speakers.load(self.session_id)
        self._load_header()
        if len(self.services.library.media(self.session_id)) != self._media_count:
            self._load_shots()
        self._update_empty()
        if follow:
            self.transcript.scrollToBottom()

    def _at_bottom(self) -> bool:
        sb = self.transcript.verticalScrollBar()
        return sb.value() >= sb.maximum() - 4

    def _load_header(self) -> None:
        if self.session_id is None:
            self.title.setText("")
            self.meta.setText("")
            self.setEnabled(False)
            return
        self.setEnabled(True)
        s = self.services.library.get_session(self.session_id)
        if not self.title.hasFocus():
            self.title.setText(s.title)
        parts = describe(s)
        if s.source:
            parts.append(Path(s.source).name)
        self.meta.setText(" · ".join(p for p in parts if p))

    def _update_empty(self) -> None:
        if self.session_id is None:
            self.empty_transcript.setText("")
            self.empty_transcript.hide()
            return
        n = self.segments.rowCount()
        s = self.services.library.get_session(self.session_id)
        if n or self.segments.loading:
            self.empty_transcript.hide()
            return
        msg = {SessionState.TRANSCRIBING: "Transcribing… segments appear here as they are ready.",
               SessionState.RECORDING: "Recording… segments appear here as people speak.",
               SessionState.FAILED: "Transcription failed; see the Jobs panel to retry."}.get(
            s.status, "No speech transcribed in this session.")
        self.empty_transcript.setText(msg)
        self.empty_transcript.show()

    _media_count = -1

    def _load_shots(self) -> None:
        self.shots.clear()
        if self.session_id is None:
            return
        lib = self.services.library
        all_media = lib.media(self.session_id)
        self._media_count = len(all_media)
        media = [m for m in all_media if m.kind in ("screenshot", "frame", "image")]
        for m in sorted(media, key=lambda m: m.offset):
            it = QListWidgetItem(clock(m.offset))
            pm = QPixmap(str(lib.absolute(m)))
            if not pm.isNull():
                it.setIcon(QIcon(pm.scaled(192, 120, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation)))
            it.setData(Qt.ItemDataRole.UserRole, m.offset)
            it.setData(Qt.ItemDataRole.UserRole + 1, m.id)
            it.setToolTip(f"{m.kind} at {clock(m.offset)} · click to see the transcript there")
            self.shots.addItem(it)
        self.tabs.setTabText(self.tabs.indexOf(self.shots), f"Screenshots ({len(media)})" if media else "Screenshots")

    # -- actions ---------------------------------------------------------------
    def _save_title(self) -> None:
        if self.session_id is None:
            return
        text = self.title.text().strip()
        s = self.services.library.get_session(self.session_id)
        if text and text != s.title:
            self.services.library.update_session(self.session_id, title=text)
            self.title_changed.emit(self.session_id)

    def _play_index(self, index) -> None:
        if self.session_id is not None and index.isValid():
            start = float(self.segments.segment(index.row()).start)
            self.follow_playback(scroll=False)
            self.player_bar.play_from(start)
            self.play_requested.emit(self.session_id, start)

    # -- playback and corrections ----------------------------------------------------------
    def _load_spans(self) -> None:
        dur = 0.0
        if self.session_id is not None and not self.services.closed:
            try:
                dur = float(self.services.library.get_session(self.session_id).duration or 0.0)
            except NotFound:
                pass
        self.player_bar.load(self.session_id, self.segments.spans(), dur)

    def _playing_at(self, seconds: float) -> None:
        """The player is at ``seconds``: highlight that segment, and keep it in view unless the
        user scrolled away (or is editing)."""
        row = self.segments.row_playing_at(seconds)
        if row == self.segments.playing_row:
            return
        self.segments.set_playing_row(row)
        if self._follow and row >= 0 and self.transcript.state() != QAbstractItemView.State.EditingState:
            self.scroll_to(row, QAbstractItemView.ScrollHint.EnsureVisible)

    def _user_scrolled(self, _action) -> None:
        if self.player_bar.playing and self._follow:
            self._follow = False
            self.player_bar.follow_button.show()

    def follow_playback(self, scroll: bool = True) -> None:
        """The transcript follows playback again (the "back to playing" button)."""
        self._follow = True
        self.player_bar.follow_button.hide()
        row = self.segments.playing_row
        if scroll and 0 <= row < self.segments.rowCount():
            self.scroll_to(row, QAbstractItemView.ScrollHint.PositionAtCenter)

    def scroll_to(self, row: int, hint: QAbstractItemView.ScrollHint, tries: int = 100) -> None:
        """Scroll to a row once the batched layout has reached it (a long session is laid out a
        few hundred rows at a time after it opens)."""
        idx = self.segments.index(row)
        if not idx.isValid():
            return
        if self.transcript.visualRect(idx).isValid() or tries <= 0:
            self.transcript.scrollTo(idx, hint)
            return
        sid = self.session_id

        def again() -> None:
            if self.session_id == sid and not self.services.closed:
                self.scroll_to(row, hint, tries - 1)

        QTimer.singleShot(20, self, again)

    def _split_position(self) -> float | None:
        bar = self.player_bar
        return bar.player.position if bar.playing and bar.player is not None else (bar.position or None)

    def _edited(self) -> None:
        self._spans_timer.start()
        if self.speakers.list.state() != QAbstractItemView.State.EditingState and \
                self.speakers.signature() != self.speakers.current_signature():
            self.speakers.load(self.session_id)

    def play_at(self, seconds: float) -> None:
        """Show the transcript at ``seconds`` and play from there (a citation, a search hit)."""
        self.jump_to(seconds)
        self.follow_playback(scroll=False)
        self.player_bar.play_from(seconds)

    def jump_to(self, seconds: float) -> None:
        """Show the transcript at ``seconds`` (a search hit, a citation, a screenshot)."""
        self.tabs.setCurrentIndex(0)
        row = self.segments.row_at_time(seconds)
        if row >= 0:
            idx = self.segments.index(row)
            self.transcript.setCurrentIndex(idx)
            self.scroll_to(row, QAbstractItemView.ScrollHint.PositionAtCenter)

    def selected_media(self) -> list[int]:
        """Media ids of the screenshots selected in the Screenshots tab (they go with a question)."""
        return [int(it.data(Qt.ItemDataRole.UserRole + 1)) for it in self.shots.selectedItems()]

    def _shot_activated(self, item: QListWidgetItem) -> None:
        self.jump_to(float(item.data(Qt.ItemDataRole.UserRole)))
