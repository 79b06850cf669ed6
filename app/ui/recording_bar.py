"""The recording bar: record / pause / stop (Ctrl+R), devices, level meters, elapsed time, screen capture.

A meeting (app.pipeline.meeting.Meeting) runs as a task on the runner's pool
with its own library connection: starting opens the devices, stopping
finalizes the audio and drains the live transcription, which can take
seconds, so neither ever runs on the UI thread. Between opening the devices and their first audio
(PulseAudio: 0.4-2 s) the bar says "Starting…"; "Recording" and the clock (the
seconds stored) appear only once audio flows. The meters and the clock poll
the recorder five times a second. Live segments are written by the live
transcriber, which calls the model process between the jobs' own calls; the
open transcript updates as each one lands. Without a model the meeting is
recorded only, and its transcription waits in the queue.
"""

from __future__ import annotations

import logging
import math
import queue

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QProgressBar, QSystemTrayIcon, QToolBar, QWidget

from app.errors import MinutelyError, one_line
from app.fmt import clock

from .tasks import Task

log = logging.getLogger("minutely.ui.recording")


def meter_value(rms: float) -> int:
    """RMS (0..1) as a 0..100 meter over -60..0 dBFS."""
    if rms <= 0:
        return 0
    return int(max(0.0, min(100.0, (20 * math.log10(rms) + 60) * 100 / 60)))


class RecordingFailed(MinutelyError):
    """The recording stopped on an error after it had started."""


class MeetingRun(QObject):
    """One Meeting's start, wait and stop as a pool task (its own library connection).

    The Task's notes become this object's signals on the main thread; the main thread holds the
    Task (the runner does) until its end has arrived, so neither is ever freed on the worker,
    however long a stop takes."""

    started = Signal(int)            # session id
    failed = Signal(str)
    segment = Signal(int)            # session id, a live segment landed
    notice = Signal(str)
    state = Signal(str)
    finished = Signal(object)        # MeetingResult

    def __init__(self, services, mic: str, system: str | None, engine, title: str | None = None,
                 continue_session: int | None = None):
        super().__init__()
        self.services = services
        self.meeting = None
        self._commands: queue.Queue = queue.Queue()
        from app.pipeline.utterances import TranscribeOptions

        # the user's standing choices: language, translation, glossary, replacement rules, their name
        opts = TranscribeOptions.from_settings(services.settings)
        args = dict(mic=mic, system=system, title=title, options=opts, continue_session=continue_session)
        commands, connect = self._commands, services.library.connect

        def run(ctx):
            from app.pipeline.meeting import Meeting

            lib = connect()
            try:
                m = Meeting(lib, engine=engine,
                            on_segment=lambda seg: ctx.note(("segment", seg.session_id)),
                            on_notice=lambda text: ctx.note(("notice", text)),
                            on_state=lambda st: ctx.note(("state", st)), **args)
                sid = m.start()  # no device, a bad name: the task fails with one line
                ctx.note(("started", (sid, m)))
                while True:
                    try:
                        if commands.get(timeout=0.2) == "stop":
                            break
                    except queue.Empty:
                        # a device was lost (the recorder stopped by itself), or the app is closing
                        if m.wait_ended(0) or ctx.cancel_event.is_set():
                            break
                try:
                    return m.stop()
                except Exception as e:  # noqa: BLE001
                    log.exception("recording failed")
                    raise RecordingFailed(f"the recording stopped: {one_line(e)}") from None
            finally:
                lib.close()

        task = Task("Recording", run, kind="record", needs_model=False)
        task.note.connect(self._note)
        task.done.connect(self.finished)
        task.failed.connect(self.failed)
        self.task = task

    def start(self) -> None:
        self.services.runner.submit(self.task)

    def _note(self, note) -> None:
        what, value = note
        if what == "started":
            sid, self.meeting = value
            self.started.emit(sid)
        else:
            getattr(self, what).emit(value)

    def stop(self) -> None:
        self._commands.put("stop")

    def join(self, timeout: float | None = None) -> bool:
        return self.task.wait(timeout)


class RecordingBar(QToolBar):
    session_started = Signal(int)
    session_changed = Signal(int)
    session_finished = Signal(int, bool)     # session id, whether it was transcribed live
    message = Signal(str)
    recording_changed = Signal(bool)

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__("Recording", parent)
        self.services = services
        self.setObjectName("recordingBar")
        self.runner: MeetingRun | None = None
        self.grabber = None
        self.session_id: int | None = None
        self.flowing = False  # the meeting's devices deliver audio: "Recording", not "Starting…"
        self._stopping = False

        self.record = QAction("● Record", self)
        self.record.setShortcut(QKeySequence("Ctrl+R"))
        self.record.setToolTip("Start recording a meeting (Ctrl+R); again to stop")
        self.record.triggered.connect(self.toggle)
        self.addAction(self.record)
        self.pause = QAction("Pause", self)
        self.pause.setCheckable(True)
        self.pause.setEnabled(False)
        self.pause.toggled.connect(self._pause)
        self.addAction(self.pause)
        self.shot = QAction("Screenshot", self)
        self.shot.setToolTip("Keep a screenshot of this moment")
        self.shot.setEnabled(False)
        self.shot.triggered.connect(self.grab_now)
        self.addAction(self.shot)
        self.addSeparator()
        self.mic = QComboBox()
        self.mic.setAccessibleName("Microphone")
        self.mic.setToolTip("Microphone")
        self.addWidget(self.mic)
        self.system = QComboBox()
        self.system.setAccessibleName("System audio")
        self.system.setToolTip("System audio: what the other people on a call say")
        self.addWidget(self.system)
        self.screen_action = QAction("Capture screen", self)
        self.screen_action.setCheckable(True)
        self.screen_action.setChecked(services.settings.screen_capture)
        self.screen_action.setToolTip("Keep a screenshot every few seconds when the screen changes")
        self.addAction(self.screen_action)
        self.addSeparator()
        self.meters: dict[str, QProgressBar] = {}
        self._meter_actions = []
        for track, name, short in (("mic", "Microphone level", "Mic"), ("system", "System audio level", "System")):
            label = QLabel(f" {short} ")
            self._meter_actions.append(self.addWidget(label))
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setTextVisible(False)
            bar.setMaximumWidth(90)
            bar.setAccessibleName(name)
            bar.setToolTip(name)
            self.meters[track] = bar
            self._meter_actions.append(self.addWidget(bar))
        self._show_meters(False)  # only while recording
        self.elapsed = QLabel("")
        self.elapsed.setAccessibleName("Recording state and elapsed time")
        self.elapsed.setMinimumWidth(self.elapsed.fontMetrics().horizontalAdvance("● Recording 0:00:00  "))
        self.addWidget(self.elapsed)
        self.timer = QTimer(self)
        self.timer.setInterval(200)
        self.timer.timeout.connect(self._tick)
        self.tray: QSystemTrayIcon | None = None
        self.fill_devices()

    # -- devices ---------------------------------------------------------------
    def fill_devices(self) -> None:
        from app.capture.devices import list_inputs

        s = self.services.settings
        self.mic.clear()
        self.mic.addItem("Default microphone", "default")
        self.system.clear()
        self.system.addItem("System audio: automatic", "auto")
        self.system.addItem("No system audio", "off")
        try:
            devices = list_inputs()
        except Exception as e:  # noqa: BLE001 - no PortAudio: say so, recording will explain too
            devices = []
            self.message.emit(f"cannot list audio devices: {e}")
        for d in devices:
            self.mic.addItem(d.name, d.name)
            self.system.addItem(d.name, d.name)
        for combo, value in ((self.mic, s.mic_device), (self.system, s.system_device)):
            i = combo.findData(value)
            if i < 0 and value:
                combo.addItem(value, value)
                i = combo.count() - 1
            combo.setCurrentIndex(max(i, 0))

    # -- control ---------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.runner is not None

    def toggle(self) -> None:
        if self.runner is None:
            self.start()
        else:
            self.stop()

    def start(self, title: str | None = None, continue_session: int | None = None) -> None:
        """Record a new session (titled ``title``), or record on into ``continue_session``."""
        if self.runner is not None:
            return
        mic = self.mic.currentData() or "default"
        system = self.system.currentData()
        system = None if system == "off" else system
        engine = None
        if self.services.model.has_model():
            engine = self.services.model.shared_engine  # a factory: loaded once speech arrives
        self.runner = MeetingRun(self.services, mic, system, engine, title, continue_session)
        self.runner.started.connect(self._started)
        self.runner.state.connect(self._state)
        self.runner.failed.connect(self._failed)
        self.runner.segment.connect(self.session_changed)
        self.runner.notice.connect(self.message)
        self.runner.finished.connect(self._finished)
        self.record.setEnabled(False)
        self.mic.setEnabled(False)
        self.system.setEnabled(False)
        self.flowing, self.session_id = False, None
        self.elapsed.setText("Starting…")
        self.runner.start()

    def stop(self) -> None:
        if self.runner is None:
            return
        self._stopping = True
        self.record.setEnabled(False)
        self.record.setText("Finishing…")
        self.pause.setEnabled(False)
        self.shot.setEnabled(False)
        self._stop_grabber()
        self.runner.stop()

    def _pause(self, on: bool) -> None:
        m = self.runner.meeting if self.runner else None
        if m is None:
            return
        m.pause() if on else m.resume()
        self.pause.setText("Resume" if on else "Pause")

    def grab_now(self) -> None:
        if self.grabber is not None:
            self.grabber.grab_now()

    def _started(self, sid: int) -> None:
        """The devices are open (the session exists); audio may not flow yet."""
        self.session_id = sid
        self.record.setText("■ Stop")
        self.record.setToolTip("Stop recording (Ctrl+R)")
        self.record.setEnabled(True)
        self._show_meters(True)
        self._show_tray(True)
        self.session_started.emit(sid)
        if self.flowing:  # audio came before this signal did
            self._recording()
        else:
            self.elapsed.setText("Starting…")
            if self.tray is not None:
                self.tray.setToolTip("Minutely — starting to record")

    def _state(self, state: str) -> None:
        if state == "recording" and not self.flowing and self.runner is not None:
            self.flowing = True
            if self.session_id is not None:
                self._recording()

    def _recording(self) -> None:
        """Audio flows: now it records. The clock counts the seconds stored."""
        if self.runner is None or self._stopping or self.timer.isActive():
            return
        self.pause.setEnabled(True)
        if self.screen_action.isChecked():
            self._start_grabber()
        self._tick()
        self.timer.start()
        self.recording_changed.emit(True)

    def _show_meters(self, on: bool) -> None:
        for a in self._meter_actions:
            a.setVisible(on)

    def _start_grabber(self) -> None:
        from app.capture.screen import ScreenGrabber, display_missing

        why = display_missing()
        m = self.runner.meeting if self.runner else None
        if why is None and m is not None:
            self.grabber = ScreenGrabber(self.services.settings.capture_interval,
                                         lambda img, forced=False: m.offer_screen(img, forced))
            why = self.grabber.start()
        if why:
            self.message.emit(f"No screenshots: {why}")
            self.grabber = None
        self.shot.setEnabled(self.grabber is not None)

    def _stop_grabber(self) -> None:
        if self.grabber is not None:
            self.grabber.stop()
            self.grabber = None

    def _failed(self, message: str) -> None:
        self.message.emit(f"Could not record: {message}")
        self._reset()

    def _finished(self, result) -> None:
        live = result.live is not None and result.live.segments > 0
        if result.error:
            self.message.emit(f"Recording stopped: {result.error} — what was recorded is kept")
        sid = result.session_id
        self._reset()
        self.session_finished.emit(sid, live)

    def _reset(self) -> None:
        self.runner = None  # its task has ended (this comes from its end): nothing left to join
        was_recording, self.flowing, self._stopping = self.timer.isActive(), False, False
        self._stop_grabber()
        self.timer.stop()
        self.record.setText("● Record")
        self.record.setToolTip("Start recording a meeting (Ctrl+R); again to stop")
        self.record.setEnabled(True)
        self.pause.setChecked(False)
        self.pause.setEnabled(False)
        self.shot.setEnabled(False)
        self.mic.setEnabled(True)
        self.system.setEnabled(True)
        for bar in self.meters.values():
            bar.setValue(0)
        self._show_meters(False)
        self.elapsed.setText("")
        self._show_tray(False)
        if was_recording:
            self.recording_changed.emit(False)

    def _tick(self) -> None:
        m = self.runner.meeting if self.runner else None
        if m is None:
            return
        self.elapsed.setText(("Paused " if m.state == "paused" else "● Recording ") + clock(m.position))
        levels = m.levels
        for track, bar in self.meters.items():
            rms = levels.get(track, (0.0, 0.0))[0]
            bar.setValue(meter_value(rms))
            bar.setEnabled(track in levels)
        if self.tray is not None:
            self.tray.setToolTip(f"Minutely — recording {clock(m.position)}")

    # -- tray ------------------------------------------------------------------
    def _show_tray(self, on: bool) -> None:
        if not on:
            if self.tray is not None:
                self.tray.hide()
                self.tray.deleteLater()
                self.tray = None
            return
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        from PySide6.QtWidgets import QApplication

        self.tray = QSystemTrayIcon(QApplication.windowIcon(), self)
        menu = QMenu()
        menu.addAction(self.pause)
        menu.addAction(self.shot)
        menu.addAction("Stop recording", self.stop)
        self.tray.setContextMenu(menu)
        self._tray_menu = menu
        self.tray.setToolTip("Minutely — recording")
        self.tray.show()


__all__ = ["RecordingBar", "MeetingRun", "meter_value", "Qt"]
