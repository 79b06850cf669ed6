"""The push-to-talk key outside the app and the paste keystroke, on a private Xvfb (real X11).

Keys are pressed with XTEST from a second X connection, as a real keyboard's would arrive; the
"other app" is a plain X window of a second connection that has the input focus."""

from __future__ import annotations

import threading
import time

import pytest

from app.ui.global_keys import GlobalTalkKey, HotkeyError, X11Hotkey, global_key_support, paste_keystroke

Xlib = pytest.importorskip("Xlib")


@pytest.fixture(scope="module")
def x11(xvfb):  # noqa: F811
    """The private X server, kept from resetting between tests: Xvfb resets (dropping new
    connections for a moment) whenever its last client leaves, so one stays connected."""
    from Xlib import display as xdisplay

    keeper = xdisplay.Display(xvfb)
    yield xvfb
    keeper.close()


def press(display: str, key: str, hold: float) -> None:
    from Xlib import XK, X
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    d = xdisplay.Display(display)
    code = d.keysym_to_keycode(XK.string_to_keysym(key))
    xtest.fake_input(d, X.KeyPress, code)
    d.sync()
    time.sleep(hold)
    xtest.fake_input(d, X.KeyRelease, code)
    d.sync()
    d.close()


class OtherApp:
    """A focused X window of another client; keeps the key names it receives."""

    def __init__(self, display: str):
        from Xlib import X
        from Xlib import display as xdisplay

        self.d = d = xdisplay.Display(display)
        root = d.screen().root
        self.w = root.create_window(10, 10, 200, 100, 0, d.screen().root_depth,
                                    event_mask=X.KeyPressMask | X.KeyReleaseMask | X.FocusChangeMask)
        self.w.map()
        d.sync()
        self.w.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
        self.keys: list[str] = []

    def read(self, seconds: float) -> list[str]:
        from Xlib import XK, X

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            while self.d.pending_events():
                ev = self.d.next_event()
                if ev.type == X.KeyPress:
                    names = {self.d.keysym_to_keycode(XK.string_to_keysym(n)): n
                             for n in ("F7", "F8", "F9", "Control_L", "v")}
                    self.keys.append(names.get(ev.detail, str(ev.detail)))
            time.sleep(0.02)
        return self.keys

    def close(self):
        self.w.destroy()
        self.d.close()


def test_held_key_is_one_press_and_one_release_and_no_other_key_is_seen(x11):
    got: list[str] = []
    cv = threading.Condition()

    def note(what):
        with cv:
            got.append(what)
            cv.notify_all()

    other = OtherApp(x11)
    key = X11Hotkey("F9", lambda: note("press"), lambda: note("release"), display=x11)
    key.start()
    try:
        press(x11, "F9", 1.0)  # long enough for the server's autorepeat to kick in
        with cv:
            assert cv.wait_for(lambda: "release" in got, timeout=10)
        press(x11, "F8", 0.1)
        time.sleep(0.3)
        assert got == ["press", "release"]
        # the grab takes F9 away from the focused app; other keys still reach it
        assert "F9" not in other.read(0.3) and "F8" in other.keys
    finally:
        key.stop()
        other.close()
    # let go: F9 reaches the focused app again
    other = OtherApp(x11)
    try:
        press(x11, "F9", 0.05)
        assert "F9" in other.read(0.5)
    finally:
        other.close()


def test_a_key_another_program_holds_is_one_line(x11):
    first = X11Hotkey("F7", display=x11)
    first.start()
    try:
        with pytest.raises(HotkeyError, match="F7 is already taken by another program"):
            X11Hotkey("F7", display=x11).start()
    finally:
        first.stop()
    with pytest.raises(HotkeyError, match="unknown key"):
        X11Hotkey("NoSuchKey", display=x11).start()


def test_paste_keystroke_reaches_the_focused_window(x11):
    other = OtherApp(x11)
    try:
        paste_keystroke(x11)
        keys = other.read(0.5)
        assert keys[:2] == ["Control_L", "v"], keys
    finally:
        other.close()


def test_where_it_cannot_work_it_says_why(monkeypatch):
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    ok, why = global_key_support()
    assert not ok and "Wayland" in why and "F9 in the dictation pad" in why
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert global_key_support() == (False, "no X11 display")
    with pytest.raises(HotkeyError, match="no X11 display"):
        paste_keystroke()


def test_qt_signals_arrive_on_the_main_thread(qtbot, x11):
    key = GlobalTalkKey("F9", display=x11)
    assert key.start() is None and key.active
    try:
        threads = []
        key.pressed.connect(lambda: threads.append(threading.current_thread()))
        with qtbot.waitSignal(key.released, timeout=10_000):
            with qtbot.waitSignal(key.pressed, timeout=10_000):
                threading.Thread(target=press, args=(x11, "F9", 0.3)).start()
        assert threads == [threading.main_thread()]
        second = GlobalTalkKey("F9", display=x11)
        assert "already taken" in second.start() and not second.active
    finally:
        key.stop()


def test_hold_the_key_in_another_app_dictates_into_it(qtbot, x11, tmp_path, tiny_model, pulse):
    """The full flow: another app has the focus, F9 is held there while speaking into the virtual
    mic, and on release the text lands in the pad, on the clipboard and (Ctrl+V) in that app."""
    from PySide6.QtWidgets import QApplication

    from app.media.audio import write_wav
    from app.ui.bootstrap import build_services
    from app.ui.dictation_pad import DictationPad
    from app.ui.global_keys import PadGlobalKey
    from tests.support.meetings import VOICES, have_tools, speak

    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    wav = write_wav(tmp_path / "say.wav", speak("Please book the room for Tuesday", VOICES[0], tmp_path))
    services = build_services(tmp_path / "home")
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(tiny_model.model), str(tiny_model.mmproj), 1, 4096
    s.mic_device = pulse.mic
    pad = DictationPad(services)  # not shown: Minutely has no focused window
    qtbot.addWidget(pad)
    gk = PadGlobalKey(pad, "F9", display=x11)
    other = OtherApp(x11)
    got = []
    pad.inserted.connect(got.append)
    try:
        assert gk.start() is None and pad.status.text() == "Hold F9 anywhere to dictate."
        from Xlib import XK, X
        from Xlib import display as xdisplay
        from Xlib.ext import xtest

        d = xdisplay.Display(x11)
        code = d.keysym_to_keycode(XK.string_to_keysym("F9"))
        xtest.fake_input(d, X.KeyPress, code)
        d.sync()
        qtbot.waitUntil(lambda: pad.status.text().startswith("Listening"), timeout=20_000)
        lst = pad.listener
        assert pulse.play(wav, "micfeed").wait(60) == 0
        n = sum(len(b) for b in lst._blocks)
        qtbot.waitUntil(lambda: sum(len(b) for b in lst._blocks) >= n + 8000, timeout=20_000)
        xtest.fake_input(d, X.KeyRelease, code)
        d.sync()
        d.close()
        qtbot.waitUntil(lambda: bool(got), timeout=120_000)
        qtbot.waitUntil(lambda: pad.status.text() == "Pasted into the app that has the focus.", timeout=10_000)
        assert pad.editor.toPlainText() == got[0] and QApplication.clipboard().text() == got[0].strip()
        keys = other.read(0.5)
        assert "F9" not in keys and keys[-2:] == ["Control_L", "v"], keys  # the key was ours; the paste theirs
    finally:
        gk.stop()
        other.close()
        pad.shutdown()
        services.close()
