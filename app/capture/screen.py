"""Screen grabs with Qt (QScreen.grabWindow), on the Qt main thread, every N seconds or on demand.

    grabber = ScreenGrabber(interval=10.0, on_image=meeting.offer_screen)   # needs a QGuiApplication
    why = grabber.start()      # None, or why there is no screen to grab (a notice, not a failure)
    grabber.grab_now()         # a grab the user asked for: always kept
    grabber.stop()

The grabber only takes the pixels and scales them down (in Qt, ~10 ms at 1280x800); the image goes
to `on_image(pil_image, forced)` (e.g. `Meeting.offer_screen`), which decides off the main thread
whether to keep it (`screenshots.ScreenKeeper`). The CLI runs it in a QGuiApplication event loop
(`python main.py record --screen-interval S`); the GUI creates one on its own main thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from PIL import Image
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QImage

GRAB_SIDE = 1920  # longest side of the image handed on (the keeper scales to its own size)


def display_missing() -> str | None:
    """Why a QGuiApplication could not show or grab a screen here, or None (checked before
    creating one: Qt aborts the process when its platform plugin cannot start)."""
    plat = os.environ.get("QT_QPA_PLATFORM", "")
    if plat.startswith(("offscreen", "minimal")):
        return f"no screen to grab (Qt platform '{plat}')"
    if sys.platform.startswith("linux") and not plat and not (os.environ.get("DISPLAY")
                                                             or os.environ.get("WAYLAND_DISPLAY")):
        return "no screen to grab (no DISPLAY or WAYLAND_DISPLAY: not in a desktop session)"
    return None


def to_pil(img: QImage) -> Image.Image:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    return Image.frombuffer("RGB", (w, h), bytes(img.constBits()), "raw", "RGB", bpl, 1).copy()


def grab(max_side: int = GRAB_SIDE) -> Image.Image | None:
    """The primary screen now, its longest side at most `max_side`; None if there is no screen
    or the platform gives no pixels (e.g. Wayland without a portal)."""
    screen = QGuiApplication.primaryScreen() if QGuiApplication.instance() is not None else None
    if screen is None:
        return None
    pix = screen.grabWindow(0)
    if pix.isNull() or pix.width() == 0:
        return None
    img = pix.toImage()
    if max(img.width(), img.height()) > max_side:
        img = img.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    return to_pil(img)


class ScreenGrabber(QObject):
    """Grabs every `interval` seconds on the thread it lives on (the Qt main thread)."""

    def __init__(self, interval: float, on_image: Callable[[Image.Image, bool], None],
                 max_side: int = GRAB_SIDE, parent: QObject | None = None):
        super().__init__(parent)
        self.interval, self.on_image, self.max_side = interval, on_image, max_side
        self.grabs = 0
        self.grab_seconds = 0.0  # total time spent grabbing (for the benchmark)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)

    def start(self) -> str | None:
        """Start the timer (and grab once now). Returns why there is no screen, or None."""
        why = display_missing()
        if why is None and QGuiApplication.instance() is None:
            why = "no screen to grab (no Qt application)"
        if why is None and QGuiApplication.primaryScreen() is None:
            why = "no screen to grab (Qt reports none)"
        if why is None and self._grab(False) is None:
            why = "the screen could not be grabbed (this desktop gives no pixels to applications)"
        if why is not None:
            return why
        if self.interval > 0:
            self._timer.start(max(50, int(self.interval * 1000)))
        return None

    def stop(self) -> None:
        self._timer.stop()

    def grab_now(self) -> bool:
        """A grab the user asked for (kept whatever it shows). False if nothing could be grabbed."""
        return self._grab(True) is not None

    def _tick(self) -> None:
        self._grab(False)

    def _grab(self, forced: bool) -> Image.Image | None:
        import time

        t0 = time.perf_counter()
        img = grab(self.max_side)
        self.grab_seconds += time.perf_counter() - t0
        if img is not None:
            self.grabs += 1
            self.on_image(img, forced)
        return img


def grab_until(interval: float, on_image: Callable[[Image.Image, bool], None],
               done: Callable[[], bool], on_notice: Callable[[str], None] | None = None) -> None:
    """Run a Qt event loop on this (main) thread that grabs the screen every `interval` seconds
    until `done()` is true (checked ten times a second, which also lets Python run its signal
    handlers). For programs without a window of their own (`python main.py record`, which checks
    `display_missing()` first: Qt aborts the process without a display); the app uses
    ScreenGrabber in its own loop. If the screen gives no pixels, `on_notice` hears why and the
    loop still runs until `done()`."""
    app = QGuiApplication.instance() or QGuiApplication(["minutely-record"])
    grabber = ScreenGrabber(interval, on_image)
    why = grabber.start()
    if why is not None and on_notice is not None:
        on_notice(why)
    watch = QTimer()

    def check() -> None:
        if done():
            app.quit()
    watch.timeout.connect(check)
    watch.start(100)
    app.exec()
    watch.stop()
    grabber.stop()
