"""The window's meeting detection: a tray offer "Record this meeting (Zoom)?" when a meeting app starts
using the microphone, recording at once for the apps in `auto_record_apps`, and auto-stop (with a
countdown in the recording bar) for a recording that detection started.

Every `interval` ms a QTimer submits one short poll (`detector.poll()`, a `pactl` call) to the
runner's pool, never two at once; its answer reaches `MeetingWatcher.update` on the main thread. The
bar is used through `recording`, `start()`, `stop()`, `message` and `runner.meeting.levels`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.capture.meetings_detect import MeetingWatcher, default_detector
from app.pipeline.autostop import AutoStop


class MeetingWatch(QObject):
    offered = Signal(str)      # app: "Record this meeting?" was offered
    countdown = Signal(str)    # the auto-stop notice ("" when cancelled)

    def __init__(self, services, bar, detector=None, interval_ms: int = 2000, release_s: float = 10.0,
                 tray=None):
        super().__init__(bar)
        self.services, self.bar = services, bar
        self.detector = detector if detector is not None else default_detector()
        self.watcher = MeetingWatcher(self.detector, on_started=self._app_started, on_stopped=self._app_stopped) \
            if self.detector is not None else None
        self.release_s = release_s
        self.tray = tray           # a QSystemTrayIcon for offers (made on first offer when there is a tray)
        self.pending: str | None = None   # the app offered and not answered
        self.app: str | None = None       # the app whose meeting is being recorded (detection started it)
        self.auto: AutoStop | None = None
        self._polling = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Poll while the settings want it (offers, or apps recorded without asking); again after
        the settings changed."""
        s = self.services.settings
        if self.watcher is not None and (s.detect_meetings or s.auto_record_apps):
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()

    def stop(self) -> None:
        self.timer.stop()

    # -- polling on the pool -------------------------------------------------------------------
    def _tick(self) -> None:
        if self.app is not None and not self.bar.recording:  # stopped (by the user, auto-stop, an error)
            self.app, self.auto = None, None
        if self.app is not None and self.auto is not None:
            self._auto_stop_check()
        if self._polling or self.watcher is None:
            return
        self._polling = True
        det = self.detector
        assert det is not None  # a watcher has one
        self.services.runner.run("Meeting detection", lambda ctx: det.poll(), kind="detect",
                                 on_done=self._polled, on_failed=self._poll_failed)

    def _polled(self, caps) -> None:
        self._polling = False
        if self.watcher is not None:
            self.watcher.update(caps)
        if self.app is not None and self.auto is not None and self.watcher is not None:
            self.auto.app_back() if self.app in self.watcher.active else self.auto.app_released()

    def _poll_failed(self, _why: str) -> None:
        self._polling = False  # the last answer stands

    # -- events -------------------------------------------------------------------------------
    def _app_started(self, app: str) -> None:
        if self.bar.recording:
            return
        allowed = {a.lower() for a in self.services.settings.auto_record_apps}
        if app.lower() in allowed:
            self.record(app)
        elif self.services.settings.detect_meetings:
            self.pending = app
            self._offer(app)
            self.offered.emit(app)

    def _app_stopped(self, app: str) -> None:
        if self.pending == app:
            self.pending = None
            if self.tray is not None:
                self.tray.hide()

    def record(self, app: str | None = None) -> None:
        """Record the meeting of `app` (the offer's Record action): auto-stop follows that app."""
        app = app or self.pending
        self.pending = None
        if app is None or self.bar.recording:
            return
        self.app = app
        minutes = self.services.settings.auto_stop_silence_minutes
        self.auto = AutoStop(minutes * 60 if minutes > 0 else None, release_s=self.release_s)
        self.bar.message.emit(f"{app} started using the microphone: recording")
        self.bar.start()

    def _auto_stop_check(self) -> None:
        m = self.bar.runner.meeting if self.bar.runner is not None else None
        if m is None or self.auto is None:
            return
        verdict = self.auto.update(m.levels)
        if verdict is None:
            return
        what, reason, left = verdict
        if what == "countdown":
            text = f"Auto-stop in {round(left)} s: {reason} ({self.app})"
            self.countdown.emit(text)
            self.bar.message.emit(text)
        elif what == "cancelled":
            self.countdown.emit("")
            self.bar.message.emit("Auto-stop cancelled")
        else:
            self.bar.message.emit(f"Recording stopped: {reason}")
            self.auto = None
            self.bar.stop()

    def _offer(self, app: str) -> None:
        from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

        text = f"Record this meeting ({app})?"
        if self.tray is None:
            if not QSystemTrayIcon.isSystemTrayAvailable():
                self.bar.message.emit(text + " Press Record (Ctrl+R).")
                return
            self.tray = QSystemTrayIcon(QApplication.windowIcon(), self)
            menu = QMenu()
            menu.addAction("Record this meeting", self.record)
            self.tray.setContextMenu(menu)
            self._menu = menu
            self.tray.messageClicked.connect(self.record)
        self.tray.setToolTip(text)
        self.tray.show()
        self.tray.showMessage("Minutely", text + " Click to record.")
