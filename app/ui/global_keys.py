"""A push-to-talk key that works while another app has the focus, and the paste keystroke.

Where it works: X11 (Linux desktops on Xorg). The key is grabbed on the root
window with XGrabKey, so Minutely receives that one key wherever the focus is
and never sees any other keystroke (unlike a keyboard hook that watches all
keys). The paste into the focused app is a Ctrl+V sent with the XTEST
extension. Both come from python-xlib (pure Python), no xdotool needed.

Where it does not: Wayland sessions do not let an app see keys pressed in
other apps nor send keys to them (by design); macOS and Windows are not built
yet. There the in-app keys (F9 in the dictation pad) and Copy still work, and
``global_key_support()`` says why in one line.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.errors import MinutelyError

log = logging.getLogger("minutely.ui.global_keys")

AUTOREPEAT_S = 0.05  # X11 autorepeat sends release+press pairs at once: a release is real past this


class HotkeyError(MinutelyError):
    """The key cannot be grabbed: one line for the user."""


def global_key_support(display: str | None = None) -> tuple[bool, str]:
    """(True, "") where a global key and a paste keystroke can work; else (False, why)."""
    if sys.platform != "linux":
        return False, "a push-to-talk key outside Minutely is not available on this system yet"
    if os.environ.get("XDG_SESSION_TYPE", "").lower() == "wayland" or (
            display is None and os.environ.get("WAYLAND_DISPLAY")):
        return False, ("Wayland does not let an app see keys pressed in other apps: "
                       "hold F9 in the dictation pad instead")
    if not (display or os.environ.get("DISPLAY")):
        return False, "no X11 display"
    try:
        import Xlib.display  # noqa: F401
        import Xlib.ext.xtest  # noqa: F401
    except ImportError:
        return False, "python-xlib is not installed"
    return True, ""


def _open(display: str | None):
    from Xlib import display as xdisplay
    from Xlib import error

    try:
        return xdisplay.Display(display)
    except (error.DisplayError, error.ConnectionClosedError, OSError, ImportError) as e:
        raise HotkeyError(f"cannot reach the X11 display: {e}") from None


class X11Hotkey:
    """Grab one key on the X11 root window; ``on_press``/``on_release`` run on its own thread.

    Held keys repeat on X11 as release+press pairs: a release counts only if no press of the
    same key follows within ``AUTOREPEAT_S``, so a hold is one press and one release."""

    def __init__(self, key: str = "F9", on_press: Callable[[], None] | None = None,
                 on_release: Callable[[], None] | None = None, display: str | None = None):
        self.key, self.on_press, self.on_release, self.display_name = key, on_press, on_release, display
        self._d: Any = None  # the Xlib display, opened by start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    def start(self) -> None:
        from Xlib import XK, X, error

        d = _open(self.display_name)
        sym = XK.string_to_keysym(self.key)
        code = d.keysym_to_keycode(sym) if sym else 0
        if not code:
            d.close()
            raise HotkeyError(f"unknown key {self.key!r}")
        root = d.screen().root
        caught = error.CatchError(error.BadAccess)
        # the same key with Caps Lock and Num Lock on (Mod2 is Num Lock on common layouts)
        for mods in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
            root.grab_key(code, mods, False, X.GrabModeAsync, X.GrabModeAsync, onerror=caught)
        d.sync()
        if caught.get_error():
            d.close()
            raise HotkeyError(f"{self.key} is already taken by another program: choose another key")
        self._d, self._code = d, code
        self._thread = threading.Thread(target=self._run, name="minutely-global-key", daemon=True)
        self._thread.start()

    def _call(self, fn) -> None:
        if fn is not None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - a listener's bug must not end the key
                log.exception("global key listener")

    def _run(self) -> None:
        from Xlib import X

        d, release_at = self._d, None
        try:
            while not self._stop.is_set():
                wait = 0.2 if release_at is None else max(0.0, release_at - time.monotonic())
                if not d.pending_events():
                    select.select([d.fileno()], [], [], wait)
                while d.pending_events():
                    ev = d.next_event()
                    if getattr(ev, "detail", None) != self._code:
                        continue
                    if ev.type == X.KeyPress:
                        if release_at is not None:
                            release_at = None  # autorepeat: still held
                        elif not self._held:
                            self._held = True
                            self._call(self.on_press)
                    elif ev.type == X.KeyRelease and self._held:
                        release_at = time.monotonic() + AUTOREPEAT_S
                if release_at is not None and time.monotonic() >= release_at:
                    release_at, self._held = None, False
                    self._call(self.on_release)
        except Exception:  # noqa: BLE001 - the display went away: the key just stops working
            log.warning("global key stopped", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._d is not None:
            try:
                self._d.screen().root.ungrab_key(self._code, 0x8000)  # AnyModifier
                self._d.close()
            except Exception:  # noqa: BLE001
                pass
            self._d = None


def paste_keystroke(display: str | None = None) -> None:
    """Ctrl+V into the window that has the focus (XTEST). HotkeyError if there is no X11."""
    from Xlib import XK, X
    from Xlib.ext import xtest

    ok, why = global_key_support(display)
    if not ok:
        raise HotkeyError(why)
    d = _open(display)
    try:
        ctrl = d.keysym_to_keycode(XK.XK_Control_L)
        v = d.keysym_to_keycode(XK.XK_v)
        for kind, code in ((X.KeyPress, ctrl), (X.KeyPress, v), (X.KeyRelease, v), (X.KeyRelease, ctrl)):
            xtest.fake_input(d, kind, code)
        d.sync()
    finally:
        d.close()


class GlobalTalkKey(QObject):
    """The X11 key as Qt signals (they arrive on the main thread)."""

    pressed = Signal()
    released = Signal()

    def __init__(self, key: str = "F9", display: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.key, self.display = key, display
        self._grab: X11Hotkey | None = None

    @property
    def active(self) -> bool:
        return self._grab is not None

    def start(self) -> str | None:
        """Grab the key; None if it works, else one line why not."""
        ok, why = global_key_support(self.display)
        if not ok:
            return why
        grab = X11Hotkey(self.key, self.pressed.emit, self.released.emit, self.display)
        try:
            grab.start()
        except HotkeyError as e:
            return str(e)
        self._grab = grab
        return None

    def stop(self) -> None:
        if self._grab is not None:
            self._grab.stop()
            self._grab = None


class PadGlobalKey(QObject):
    """Push-to-talk from anywhere for a DictationPad: hold the key in any app and speak; on release
    the text goes into the pad and, when another app had the focus, is pasted there (clipboard +
    Ctrl+V), as a dictation tool does.

        gk = PadGlobalKey(pad)          # F9; pad.message says what happens
        why = gk.start()                # None, or one line why not (Wayland, key taken...)
    """

    def __init__(self, pad, key: str = "F9", display: str | None = None):
        super().__init__(pad)
        self.pad, self.display = pad, display
        self.key = GlobalTalkKey(key, display, self)
        self.key.pressed.connect(self._press)
        self.key.released.connect(self._release)
        pad.inserted.connect(self._inserted)
        self._elsewhere = False

    def start(self) -> str | None:
        why = self.key.start()
        self.pad.message.emit(f"Hold {self.key.key} anywhere to dictate." if why is None
                              else f"No push-to-talk key outside Minutely: {why}.")
        return why

    def stop(self) -> None:
        self.key.stop()

    def _press(self) -> None:
        from PySide6.QtWidgets import QApplication

        self._elsewhere = QApplication.activeWindow() is None  # another app has the focus
        self.pad.begin("talk")

    def _release(self) -> None:
        self.pad.end()

    def _inserted(self, text: str) -> None:
        from PySide6.QtWidgets import QApplication

        elsewhere, self._elsewhere = self._elsewhere, False
        if not elsewhere or QApplication.activeWindow() is not None:  # Minutely has the focus now
            return
        QApplication.clipboard().setText(text.strip())
        try:
            paste_keystroke(self.display)
        except HotkeyError as e:
            self.pad.message.emit(f"Copied: paste it with Ctrl+V ({e}).")
            return
        self.pad.message.emit("Pasted into the app that has the focus.")


__all__ = ["GlobalTalkKey", "PadGlobalKey", "X11Hotkey", "HotkeyError", "global_key_support", "paste_keystroke"]
