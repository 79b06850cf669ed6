"""The session's playback bar: play/pause, back and forward 5 s, a seek bar showing who speaks
when (coloured by speaker), the speed, the time, and "back to the playing segment".

Playback runs in the player's own thread (app/media/player.py): the bar only starts, halts
(never waiting for the old thread) and reads the position, 25 times a second while playing.
Speed goes through FFmpeg's ``atempo`` in the player, so voices keep their pitch.
"""

from __future__ import annotations

import logging
from operator import itemgetter

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QStyle, QToolButton, QWidget

from app.fmt import clock
from app.media.player import SPEEDS, Player

log = logging.getLogger("minutely.ui.player")

SKIP = 5.0


class Timeline(QWidget):
    """The seek bar: the session's speech as coloured spans (one colour per speaker), the
    playhead; click or drag to seek."""

    seek = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAccessibleName("Seek")
        self.setMinimumSize(120, 22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.duration = 0.0
        self.position = 0.0
        self._spans: list[tuple[float, float, QColor]] = []
        self._starts = self._ends = np.zeros(0)
        self._colours: list[QColor] = []
        self._cache: QPixmap | None = None

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(400, 22)

    def set_spans(self, spans: list[tuple[float, float, QColor]], duration: float) -> None:
        # numpy and map rather than Python loops over the 4,000 spans (see ``SegmentModel.spans``)
        starts = np.fromiter(map(itemgetter(0), spans), float, len(spans))
        ends = np.fromiter(map(itemgetter(1), spans), float, len(spans))
        order = np.argsort(starts, kind="stable")
        self._spans, self.duration = spans, max(duration, float(ends.max()) if len(ends) else 0.0)
        self._starts, self._ends = starts[order], ends[order]
        self._colours = list(map(itemgetter(2), map(spans.__getitem__, order.tolist())))
        self._cache = None
        self.update()

    def set_position(self, seconds: float) -> None:
        old = self._x(self.position)
        self.position = seconds
        new = self._x(seconds)
        if int(old) != int(new):
            self.update(int(min(old, new)) - 3, 0, int(abs(new - old)) + 7, self.height())

    def _x(self, seconds: float) -> float:
        return 2 + (self.width() - 4) * (seconds / self.duration if self.duration > 0 else 0.0)

    def _draw_spans(self) -> QPixmap:
        pm = QPixmap(self.size() * self.devicePixelRatioF())
        pm.setDevicePixelRatio(self.devicePixelRatioF())
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        bg = self.palette().color(QPalette.ColorRole.Mid)
        bg.setAlphaF(0.35)
        h = self.height()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(bg)
        p.drawRoundedRect(QRectF(0, h / 2 - 5, self.width(), 10), 4, 4)
        # one colour per pixel column (the last span that starts in or before it and reaches into
        # it), then one rectangle per run: a 3-hour meeting's 4,000 segments are a few hundred
        # rectangles, computed with numpy (the bar is redrawn on every resize)
        width = max(1, int(self.width()))
        if len(self._starts) and self.duration > 0:
            per_px = self.duration / max(1, width - 4)
            t0 = (np.arange(width) - 2) * per_px  # each column's time span [t0, t0 + per_px)
            k = np.searchsorted(self._starts, t0 + per_px, side="left") - 1
            hit = (k >= 0) & (self._ends[np.maximum(k, 0)] > t0)
            k = np.where(hit, k, -1)
            edges = np.flatnonzero(np.diff(k)) + 1
            for a, b in zip(np.r_[0, edges], np.r_[edges, width], strict=True):
                if k[a] >= 0:
                    p.fillRect(QRectF(float(a), h / 2 - 5, float(b - a), 10), self._colours[int(k[a])])
        p.end()
        return pm

    def paintEvent(self, _e) -> None:  # noqa: N802
        if self._cache is None or self._cache.deviceIndependentSize().toSize() != self.size():
            self._cache = self._draw_spans()
        p = QPainter(self)
        p.drawPixmap(0, 0, self._cache)
        x = self._x(self.position)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(self.palette().color(QPalette.ColorRole.Text))
        p.drawRect(QRectF(x - 1, 1, 2, self.height() - 2))
        p.drawEllipse(QRectF(x - 4, self.height() / 2 - 4, 8, 8))
        p.end()

    def resizeEvent(self, e) -> None:  # noqa: N802
        self._cache = None
        super().resizeEvent(e)

    def _seek_to(self, x: float) -> None:
        if self.duration > 0:
            self.seek.emit(max(0.0, min(self.duration, (x - 2) / max(1, self.width() - 4) * self.duration)))

    def mousePressEvent(self, e) -> None:  # noqa: N802
        self._seek_to(e.position().x())

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if e.buttons() & Qt.MouseButton.LeftButton:
            self._seek_to(e.position().x())


class PlayerBar(QWidget):
    """Play the open session's audio; ``position_changed`` while playing and on every seek."""

    position_changed = Signal(float)
    playing_changed = Signal(bool)
    follow_requested = Signal()   # "back to the playing segment"
    message = Signal(str)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.session_id: int | None = None
        self.player: Player | None = None      # made on first play (tests may set their own)
        self.position = 0.0
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 2)
        lay.setSpacing(4)

        def tool(text: str, name: str, tip: str, slot) -> QToolButton:
            b = QToolButton()
            b.setText(text)
            b.setAccessibleName(name)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            lay.addWidget(b)
            return b

        self.back_button = tool("−5 s", "Back 5 seconds", "Back 5 seconds (Ctrl+Left)", lambda: self.skip(-SKIP))
        self.play_button = tool("Play", "Play", "Play / pause (Space)", self.toggle)
        self.play_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.forward_button = tool("+5 s", "Forward 5 seconds", "Forward 5 seconds (Ctrl+Right)",
                                   lambda: self.skip(SKIP))
        self.timeline = Timeline()
        self.timeline.seek.connect(self.seek)
        lay.addWidget(self.timeline, 1)
        self.time_label = QLabel("0:00 / 0:00")
        self.time_label.setAccessibleName("Playback time")
        lay.addWidget(self.time_label)
        self.speed = QComboBox()
        self.speed.setAccessibleName("Playback speed")
        self.speed.setToolTip("Playback speed (voices keep their pitch)")
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(self._speed_changed)
        lay.addWidget(self.speed)
        self.follow_button = tool("Back to playing", "Back to the playing segment",
                                  "The transcript follows playback again", self.follow_requested)
        self.follow_button.hide()
        self.notice = QLabel()
        self.notice.setAccessibleName("Playback notice")
        self.notice.hide()
        lay.addWidget(self.notice)
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._tick)

    # -- state ------------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.playing

    @property
    def rate(self) -> float:
        return float(self.speed.currentData())

    def load(self, session_id: int | None, spans: list[tuple[float, float, QColor]], duration: float) -> None:
        if session_id != self.session_id:
            self.pause()
            self.position = 0.0
            self.notice.hide()
        self.session_id = session_id
        self.timeline.set_spans(spans, duration)
        self._show_position()

    def _show_position(self) -> None:
        self.timeline.set_position(self.position)
        self.time_label.setText(f"{clock(self.position)} / {clock(self.timeline.duration)}")

    def _set_playing(self, on: bool) -> None:
        self.play_button.setIcon(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MediaPause if on else QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setText("Pause" if on else "Play")
        self.play_button.setAccessibleName("Pause" if on else "Play")
        if on:
            self._timer.start()
        else:
            self._timer.stop()
        self.playing_changed.emit(on)

    # -- actions ----------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play_from(self.position)

    def play_from(self, seconds: float) -> bool:
        """Play the session from ``seconds``; False (with a one-line notice) if its audio is gone."""
        if self.session_id is None or self.services.closed:
            return False
        path = self.services.library.session_audio(self.session_id, include_source=True)
        if path is None:
            self._notice("This session's audio is not available (the file was moved or deleted).")
            return False
        self.notice.hide()
        if self.player is None:
            self.player = Player()
        self.position = max(0.0, seconds)
        # the player calls back on its own thread: the runner brings the call to this one
        self.player.play(path, self.position, on_done=self.services.runner.callback(self._ended), speed=self.rate)
        self._set_playing(True)
        self._show_position()
        self.position_changed.emit(self.position)
        return True

    def pause(self) -> None:
        if self.player is not None and self.player.playing:
            self.position = self.player.halt()
            self._set_playing(False)
            self._show_position()

    def seek(self, seconds: float) -> None:
        seconds = max(0.0, min(seconds, self.timeline.duration or seconds))
        if self.playing:
            self.play_from(seconds)
        else:
            self.position = seconds
            self._show_position()
            self.position_changed.emit(seconds)

    def skip(self, delta: float) -> None:
        self.seek((self.player.position if self.playing and self.player else self.position) + delta)

    def _speed_changed(self) -> None:
        if self.playing and self.player is not None:
            self.play_from(self.player.position)

    def _tick(self) -> None:
        if self.player is None or self.services.closed:
            return
        self.position = self.player.position
        self._show_position()
        self.position_changed.emit(self.position)
        if not self.player.playing:
            self._set_playing(False)

    def _ended(self, error: str | None) -> None:  # main thread, via the runner
        if self.player is not None and not self.player.playing:
            self.position = self.player.position
            self._set_playing(False)
            self._show_position()
        if error:
            self._notice(error)

    def _notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setToolTip(text)
        self.notice.show()
        self.message.emit(text)

    def shutdown(self) -> None:
        self._timer.stop()
        if self.player is not None:
            self.player.stop()
