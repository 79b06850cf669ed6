"""The main window: library on the left, the open session on the right, jobs below.

It receives the ``Services`` the bootstrap built and never builds its own.
Dropping a file (or File > Import) reads it on the io worker (the session
appears at once) and queues its transcription on the model worker, which
waits while no model is configured.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.fmt import clock

from .delegates import TwoLineDelegate
from .imports import Importer
from .jobs_panel import JobsPanel
from .qmodels import IdRole, SessionListModel
from .search_view import SearchResults
from .session_view import SessionView

log = logging.getLogger("minutely.ui")

MEDIA_FILTER = ("Audio and video (*.wav *.mp3 *.m4a *.aac *.flac *.ogg *.opus *.wma *.mp4 *.mkv *.mov "
                "*.webm *.avi *.m4v);;All files (*)")

WARM_UP_AFTER_MS = 1000  # after start-up, so loading the speech detectors never delays the window


class MainWindow(QMainWindow):
    session_opened = Signal(int)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._opening = False  # open_session moves the list itself (see _session_selected)
        self.services = services
        self.setWindowTitle("Minutely")
        self.setAcceptDrops(True)
        self.setObjectName("MainWindow")

        # left: search + sessions / hits
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(6, 6, 0, 6)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search all meetings…")
        self.search.setAccessibleName("Search")
        self.search.setClearButtonEnabled(True)
        ll.addWidget(self.search)
        from .calendar_panel import CalendarPanel

        self.calendar = CalendarPanel(services)  # today and upcoming events, "Record this"
        ll.addWidget(self.calendar)
        self.left_stack = QStackedWidget()
        self.sessions = SessionListModel(services.library, self)
        self.session_list = QListView()
        self.session_list.setAccessibleName("Sessions")
        self.session_list.setModel(self.sessions)
        self.session_list.setItemDelegate(TwoLineDelegate(self.session_list))
        self.session_list.setUniformItemSizes(True)
        self.session_list.selectionModel().currentChanged.connect(self._session_selected)
        self.left_stack.addWidget(self.session_list)
        self.results = SearchResults(services.library)
        self.results.hit_chosen.connect(self._hit_chosen)
        self.left_stack.addWidget(self.results)
        ll.addWidget(self.left_stack, 1)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self._run_search)
        self.search.textChanged.connect(lambda _: self._search_timer.start())

        # right: welcome / session
        self.right = QStackedWidget()
        from .model_download import ModelDownloader
        from .model_setup import ModelSetup

        self.downloader = ModelDownloader(services, parent=self)  # one per app: survives its dialogs
        welcome_page = QWidget()
        wl = QVBoxLayout(welcome_page)
        self.welcome = QLabel()
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setWordWrap(True)
        self.welcome.setTextFormat(Qt.TextFormat.RichText)
        self.welcome.setAccessibleName("Getting started")
        wl.addWidget(self.welcome)
        self.model_setup = ModelSetup(services, downloader=self.downloader)
        self.model_setup.model_ready.connect(self._model_ready)
        wl.addWidget(self.model_setup)
        wl.addStretch(1)
        scroll = QScrollArea()  # the window may be smaller than the first-run page
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(welcome_page)
        self.welcome_page = scroll
        self.right.addWidget(scroll)
        self.session_view = SessionView(services)
        self.session_view.export_requested.connect(self.export_session)
        self.session_view.title_changed.connect(self.sessions.update_session)
        self.session_view.status_message.connect(self.notify)
        self.session_view.task_started.connect(lambda t: self.jobs.add_task(t))
        self.right.addWidget(self.session_view)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([280, 820])
        self.setCentralWidget(self.splitter)

        self.jobs = JobsPanel()
        self.jobs_dock = QDockWidget("Jobs", self)
        self.jobs_dock.setObjectName("jobsDock")
        self.jobs_dock.setWidget(self.jobs)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)

        from .dictation_pad import DictationPad

        self.dictation = DictationPad(services)
        self.dictation.inserted.connect(lambda _t: self.sessions.reload())  # each dictation is a session
        self.dictation_dock = QDockWidget("Dictation", self)
        self.dictation_dock.setObjectName("dictationDock")
        self.dictation_dock.setWidget(self.dictation)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dictation_dock)
        self.dictation_dock.hide()
        self.dictation_dock.visibilityChanged.connect(self._dictation_shown)

        self.importer = Importer(services, self.jobs, self)
        self.importer.session_created.connect(self._session_created)
        self.importer.session_changed.connect(self._session_changed)
        self.importer.error.connect(self.notify)

        from .recording_bar import RecordingBar

        self.recording = RecordingBar(services, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.recording)
        self.recording.session_started.connect(self._session_created)
        self.recording.session_changed.connect(self._session_changed)
        self.recording.session_finished.connect(self._recording_finished)
        self.recording.message.connect(self.notify)
        self.calendar.record_requested.connect(self.record_event)
        self.calendar.message.connect(self.notify)
        self.session_list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        from .meeting_watch import MeetingWatch

        self.meeting_watch = MeetingWatch(services, self.recording)  # offers to record a meeting app's call
        self.meeting_watch.start()
        from .serving import ModelServing

        self.serving = ModelServing(services, self)  # the model for other apps, when the settings say so
        self.serving.changed.connect(self.notify)
        self.serving.apply()

        self.model_label = QLabel()
        self.model_label.setAccessibleName("Model state")
        self.statusBar().addPermanentWidget(self.model_label)
        services.model.model_state.connect(self._model_state)
        self._build_menus()
        self._closed = False

        self.sessions.reload()
        self._update_welcome()
        self._model_state(services.model.state if services.model.has_model() else "no model")
        self._restore_state()
        for msg in services.notices:
            self.notify(msg)
        self.importer.add_interrupted_jobs()
        self.importer.recover_recordings()
        self.calendar.start()  # the settings' calendar folder, now and every few minutes
        self.warmed_up = False
        QTimer.singleShot(WARM_UP_AFTER_MS, self, self._warm_up)
        self._global_key = None
        if services.settings.global_push_to_talk:
            self.global_ptt.setChecked(True)

    # -- menus -----------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file = mb.addMenu("&File")
        self.import_action = QAction("&Import audio or video…", self)
        self.import_action.setShortcut(QKeySequence.StandardKey.Open)
        self.import_action.triggered.connect(self.import_dialog)
        file.addAction(self.import_action)
        self.import_calendar_action = QAction("Import &calendar…", self)
        self.import_calendar_action.triggered.connect(self.import_calendar_dialog)
        file.addAction(self.import_calendar_action)
        file.addSeparator()
        self.continue_action = QAction("&Continue recording into this session", self)
        self.continue_action.triggered.connect(self.continue_recording)
        self.session_list.addAction(self.continue_action)
        file.addAction(self.continue_action)
        self.delete_action = QAction("&Delete session", self)
        self.delete_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.delete_action.triggered.connect(self.delete_current)
        self.session_list.addAction(self.delete_action)
        file.addAction(self.delete_action)
        file.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file.addAction(quit_action)
        self.file_menu = file
        self.edit_menu = mb.addMenu("&Edit")  # the open transcript's corrections
        editing = self.session_view.editing
        self.edit_menu.addActions([editing.undo_action, editing.redo_action])
        self.edit_menu.addSeparator()
        self.edit_menu.addAction(editing.replace_action)
        view = mb.addMenu("&View")
        view.addAction(self.jobs_dock.toggleViewAction())
        find = QAction("&Search", self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(lambda: (self.search.setFocus(), self.search.selectAll()))
        view.addAction(find)
        self.view_menu = view
        self.tools_menu = mb.addMenu("&Tools")
        model = QAction("&Model…", self)
        model.triggered.connect(self.model_dialog)
        self.tools_menu.addAction(model)
        settings = QAction("&Settings…", self)
        settings.setShortcut(QKeySequence.StandardKey.Preferences)
        settings.setMenuRole(QAction.MenuRole.PreferencesRole)
        settings.triggered.connect(self.settings_dialog)
        self.tools_menu.addAction(settings)
        self.tools_menu.addSeparator()
        dictation = self.dictation_dock.toggleViewAction()
        dictation.setText("&Dictation pad")
        dictation.setShortcut(QKeySequence("Ctrl+D"))
        self.tools_menu.addAction(dictation)
        self.global_ptt = QAction("Push-to-talk in every app (hold F9; X11)", self)
        self.global_ptt.setCheckable(True)
        self.global_ptt.setToolTip("Hold F9 in any app, speak, release: the text is pasted there")
        self.global_ptt.toggled.connect(self.set_global_push_to_talk)
        self.tools_menu.addAction(self.global_ptt)
        ask_all = QAction("&Ask all meetings…", self)
        ask_all.setShortcut(QKeySequence("Ctrl+Shift+A"))
        ask_all.triggered.connect(self.ask_all)
        self.tools_menu.addAction(ask_all)
        help_ = mb.addMenu("&Help")
        about = QAction("&About Minutely", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "About Minutely",
            f"<b>Minutely {__version__}</b><p>The offline meeting assistant. One local model hears, "
            "reads and answers; nothing leaves this computer.</p>"))
        help_.addAction(about)

    # -- state -----------------------------------------------------------------
    def _ui_state(self) -> QSettings:
        # kept in the data folder (never the user's global Qt settings), so tests stay private
        return QSettings(str(self.services.data_dir / "window.ini"), QSettings.Format.IniFormat)

    def _restore_state(self) -> None:
        st = self._ui_state()
        geo, state, split = st.value("geometry"), st.value("state"), st.value("splitter")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1100, 720)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        else:  # first start: a slim jobs panel
            QTimer.singleShot(0, self, lambda: self.resizeDocks(
                [self.jobs_dock], [max(90, self.height() // 8)], Qt.Orientation.Vertical))
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)
        ts = st.value("transcriptSplitter")
        if isinstance(ts, QByteArray):
            self.session_view.splitter.restoreState(ts)

    def save_state(self) -> None:
        st = self._ui_state()
        st.setValue("geometry", self.saveGeometry())
        st.setValue("state", self.saveState())
        st.setValue("splitter", self.splitter.saveState())
        st.setValue("transcriptSplitter", self.session_view.splitter.saveState())
        st.sync()

    def _model_state(self, state: str) -> None:
        text = {"no model": "No model yet — recording and importing work; transcription waits",
                "loading": "Loading the model…", "ready": "Model ready"}.get(state, f"Model {state}")
        self.model_label.setText(text)
        self._update_welcome()

    def _update_welcome(self) -> None:
        has_sessions = self.sessions.rowCount() > 0
        if not self.services.model.has_model():
            model = ("<p><b>First, get the model</b> (about 8 GB, once): download it below (or with "
                     "Tools ▸ Model…), or import GGUF files you already have. Until then you can still "
                     "record and import; transcription waits in the queue.</p>")
            self.model_setup.show()
        else:
            model = ""
            self.model_setup.hide()
        lines = "" if has_sessions else ("<p>Drop an audio or video file here, or use File ▸ Import, "
                                         "to get a transcript with speakers.</p>")
        self.welcome.setText(f"<h2>Minutely</h2>{model}{lines}"
                             "<p>Everything stays on this computer.</p>")

    def model_dialog(self):
        from .model_setup import ModelDialog

        dlg = ModelDialog(self.services, self, downloader=self.downloader)
        dlg.model_ready.connect(self._model_ready)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def settings_dialog(self):
        from .settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.services, self, downloader=self.downloader)
        dlg.model_ready.connect(self._model_ready)
        dlg.settings_saved.connect(self._settings_saved)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def _settings_saved(self, changed) -> None:
        if "calendar_folder" in changed:
            self.calendar.reimport_folder()
        if changed & {"detect_meetings", "auto_record_apps"}:
            self.meeting_watch.start()
        if not self.recording.recording and changed & {"mic_device", "system_device", "screen_capture"}:
            self.recording.fill_devices()
            self.recording.screen_action.setChecked(self.services.settings.screen_capture)
        self.notify("Settings saved")
        if changed & {"serve_model", "serve_port"}:
            self.serving.apply()  # says where it serves (or that it stopped), after "Settings saved"

    def _warm_up(self) -> None:
        """Load the speech detectors and the speaker segmentation model on the pool once the
        window has settled: onnxruntime's first import holds the interpreter lock for tens of
        milliseconds, and reading the segmentation checkpoint and building its session take
        ~0.4 s of Python, which would otherwise run while the first dropped file is read."""
        import numpy as np

        from app.media import overlap
        from app.media.vad import warm_up

        if self._closed:
            return

        def work(_ctx) -> None:
            warm_up()
            overlap.detect([np.zeros(overlap.RATE, np.float32)])

        self.services.runner.run("Getting speech detection ready", work, kind="warm-up",
                                 on_done=self._warmed_up, on_failed=self._warmed_up)

    def _warmed_up(self, *_: object) -> None:
        self.warmed_up = True

    def _model_ready(self) -> None:
        self._update_welcome()
        self.services.model.preload()

    def notify(self, message: str, ms: int = 8000) -> None:
        log.info("%s", message)
        self.statusBar().showMessage(message, ms)

    # -- sessions --------------------------------------------------------------
    def _session_selected(self, current, _previous) -> None:
        if current.isValid() and not self._opening:
            self._show(int(current.data(IdRole)))

    def _show(self, session_id: int, at: float | None = None) -> None:
        self.session_view.show_session(session_id, at)
        self.right.setCurrentWidget(self.session_view)
        self.session_opened.emit(session_id)

    def open_session(self, session_id: int, at: float | None = None) -> None:
        row = self.sessions.row_of(session_id)
        if row < 0:
            self.sessions.update_session(session_id)
            row = self.sessions.row_of(session_id)
        # the list follows without showing the session a second time (its selection model's
        # currentChanged still fires: a 4,000-segment session would be read twice)
        self._opening = True
        try:
            self.session_list.setCurrentIndex(self.sessions.index(row))
        finally:
            self._opening = False
        self._show(session_id, at)

    def _hit_chosen(self, session_id: int, seconds: float) -> None:
        """A search hit: open its session there; a hit in the transcript also plays from it."""
        self.open_session(session_id, seconds)
        if seconds > 0:
            self.session_view.play_at(seconds)

    def _session_created(self, session_id: int) -> None:
        self.sessions.update_session(session_id)
        self._update_welcome()
        self.open_session(session_id)

    def _session_changed(self, session_id: int) -> None:
        if self._closed or self.services.closed:
            return
        self.sessions.update_session(session_id)
        self.session_view.refresh_soon(session_id)

    def set_global_push_to_talk(self, on: bool) -> str | None:
        """Hold F9 in any app to dictate into it (X11); otherwise a one-line reason."""
        why = None
        if on and self._global_key is None:
            from .global_keys import PadGlobalKey

            key = PadGlobalKey(self.dictation)
            why = key.start()
            if why is None:
                self._global_key = key
            else:
                self.notify(f"Push-to-talk in every app is not available: {why}")
                self.global_ptt.blockSignals(True)
                self.global_ptt.setChecked(False)
                self.global_ptt.blockSignals(False)
        elif not on and self._global_key is not None:
            self._global_key.stop()
            self._global_key = None
        want = self._global_key is not None
        if self.services.settings.global_push_to_talk != want and not self.services.closed:
            self.services.settings.global_push_to_talk = want
            self.services.save_settings()
        return why

    def _dictation_shown(self, visible: bool) -> None:
        if visible and not getattr(self, "_dictation_sized", False):
            self._dictation_sized = True  # a sensible first width; later the user's is kept
            QTimer.singleShot(0, self, lambda: self.resizeDocks(
                [self.dictation_dock], [max(360, self.width() // 3)], Qt.Orientation.Horizontal))

    def _recording_finished(self, session_id: int, transcribed_live: bool) -> None:
        self._session_changed(session_id)
        if not transcribed_live:
            self.importer.transcribe_recording(session_id)

    def delete_current(self) -> None:
        sid = self.session_view.session_id
        if sid is None:
            return
        title = self.services.library.get_session(sid).title
        if QMessageBox.question(self, "Delete session",
                                f"Delete “{title}” with its transcript, audio and screenshots?") \
                != QMessageBox.StandardButton.Yes:
            return
        self.services.library.delete_session(sid)
        self.sessions.update_session(sid)
        self.session_view.show_session(None)
        self.right.setCurrentWidget(self.welcome_page)
        self._update_welcome()

    # -- search ----------------------------------------------------------------
    def _run_search(self) -> None:
        q = self.search.text().strip()
        if not q:
            self.left_stack.setCurrentWidget(self.session_list)
            return
        self.results.run(q)
        self.left_stack.setCurrentWidget(self.results)

    def ask_all(self):
        from .library_ask import LibraryAskDialog

        if getattr(self, "_ask_all", None) is None:
            self._ask_all = LibraryAskDialog(self.services, self)
            self._ask_all.open_session.connect(self.open_session)
            self._ask_all.task_started.connect(lambda t: self.jobs.add_task(t))
        self._ask_all.show()
        self._ask_all.raise_()
        self._ask_all.input.setFocus()
        return self._ask_all

    def second_start(self, args: list) -> None:
        """Minutely was started again: come to the front and import the files it was given."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()
        for a in args:
            p = Path(a)
            if p.is_file():
                self.importer.import_file(p)

    # -- import / export / play -----------------------------------------------
    def import_calendar_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a calendar", "", "Calendars (*.ics);;All files (*)")
        if path:
            self.calendar.import_file(path)

    def record_event(self, title: str) -> None:
        """Record a meeting titled after a calendar event ("Record this")."""
        if self.recording.recording:
            self.notify("Stop the recording first.")
            return
        self.recording.start(title=title)

    def continue_recording(self, session_id: int | None = None) -> None:
        """Record on into a session (the open one): its new audio joins the old."""
        sid = session_id or self.session_view.session_id
        if sid is None or self.recording.recording:
            self.notify("Stop the recording first." if sid is not None else "Open a session to continue it.")
            return
        self.recording.start(continue_session=sid)

    def import_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import audio or video", str(Path.home()), MEDIA_FILTER)
        for f in files:
            self.importer.import_file(Path(f))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        for p in paths:
            self.importer.import_file(p)
        if paths:
            event.acceptProposedAction()

    def export_session(self, session_id: int, fmt: str) -> None:
        from app.library.export import safe_filename

        detail = self.services.library.session_detail(session_id)
        suggested = str(Path.home() / safe_filename(detail.session.title or "session", fmt))
        path, _ = QFileDialog.getSaveFileName(self, "Export session", suggested)
        if not path:
            return
        self.export_to(session_id, fmt, Path(path))

    def export_to(self, session_id: int, fmt: str, path: Path) -> Path | None:
        from app.library.export import ExportError, export_session

        try:
            out = export_session(self.services.library.session_detail(session_id), fmt, path)
        except (ExportError, OSError) as e:
            self.notify(f"Export failed: {e}")
            return None
        self.notify(f"Exported to {out}")
        return out

    def audio_path(self, session_id: int) -> Path | None:
        return self.services.library.session_audio(session_id, include_source=True)

    def play(self, session_id: int, seconds: float) -> None:
        """Open the session (if it is not open) and play it from ``seconds`` in its player bar."""
        if self.session_view.session_id != session_id:
            self.open_session(session_id, seconds)
        if self.session_view.player_bar.play_from(seconds):
            self.notify(f"Playing from {clock(seconds)}", 3000)

    # -- closing ---------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        if self.recording.recording:
            # never lose a meeting: stop it properly (finalize the audio) before quitting
            runner = self.recording.runner
            self.recording.stop()
            if runner is not None:
                runner.join(60)
        self._closed = True
        for timer in self.findChildren(QTimer):
            timer.stop()
        self.serving.stop()
        self.model_setup.shutdown()
        self.downloader.shutdown()
        if self._global_key is not None:
            self._global_key.stop()
            self._global_key = None
        self.dictation.shutdown()
        self.save_state()
        self.session_view.player_bar.shutdown()
        event.accept()
