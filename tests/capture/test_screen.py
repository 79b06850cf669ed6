"""Screen grabs: which grabs are kept (no Qt), then `record --screen-interval` under a private Xvfb
with another process drawing a window that changes on cue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from app.capture.screenshots import ScreenKeeper, changed_area, thumbnail
from app.library import Library
from tests.support.cli_proc import ROOT, CliProc, db_rows, wait_for
from tests.support.screen import slide

# --- keeping grabs (no Qt) ----------------------------------------------------------------------

def test_only_changed_grabs_are_kept_downscaled(tmp_path):
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("s", "recording").id
    keeper = ScreenKeeper(lib, sid)
    assert keeper.offer(slide(1), 0.5) is not None  # the first is always kept
    assert keeper.offer(slide(1), 1.0) is None  # unchanged
    assert keeper.offer(slide(1, dot=True), 1.5) is None  # a blinking dot is no change
    k2 = keeper.offer(slide(2), 2.0)
    assert k2 is not None and k2.change > 0.2
    k3 = keeper.offer(slide(2), 2.5, force=True)  # asked for by the user: kept as it is
    assert k3 is not None and k3.forced
    rows = lib.media(sid, "screenshot")
    assert [m.offset for m in rows] == [0.5, 2.0, 2.5]
    for m in rows:
        p = lib.absolute(m)
        assert p.parent == lib.media_dir(sid) / "screens"
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (1280, 800) == (m.width, m.height)
        assert m.bytes == p.stat().st_size < 250_000
    assert not list((lib.media_dir(sid) / "screens").glob(".*"))  # no partial files left
    lib.close()


def test_disk_use_is_bounded(tmp_path):
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("s", "recording").id
    notices = []
    keeper = ScreenKeeper(lib, sid, max_bytes=150_000, on_notice=notices.append)
    kept = [keeper.offer(slide(k), float(k)) for k in range(8)]
    assert kept[0] is not None and None in kept
    assert keeper.used_bytes < 150_000 + max(k.bytes for k in kept if k)
    assert len(notices) == 1 and notices[0].startswith("screen grabs stopped")
    assert keeper.offer(slide(99), 9.0, force=True) is not None  # asked-for grabs still go in
    lib.close()


def test_changed_area_is_a_fraction_of_the_screen():
    a = thumbnail(slide(1))
    assert changed_area(a, a) == 0.0
    assert changed_area(a, thumbnail(slide(1, dot=True))) < 0.005
    assert changed_area(a, thumbnail(slide(3))) > 0.2
    assert changed_area(a, thumbnail(slide(1, size=(800, 600)))) == 1.0


# --- under Xvfb: a real screen, another process's window ------------------------------------------

PAINTER = textwrap.dedent("""
    import sys, threading
    from PySide6.QtCore import QTimer, Qt
    from PySide6.QtGui import QColor, QPainter
    from PySide6.QtWidgets import QApplication, QWidget
    from PIL.ImageQt import ImageQt
    sys.path.insert(0, sys.argv[1])
    from tests.support.screen import slide

    app = QApplication([])
    cues = []
    threading.Thread(target=lambda: [cues.append(line) for line in sys.stdin], daemon=True).start()

    class W(QWidget):
        k, dot = 1, False
        def paintEvent(self, e):
            p = QPainter(self)
            p.drawImage(0, 0, ImageQt(slide(self.k, (self.width(), self.height()), self.dot)))
            p.end()

    w = W()
    w.setWindowFlag(Qt.FramelessWindowHint)
    w.setGeometry(0, 0, 1600, 1000)
    w.show()

    def tick():
        w.dot = not w.dot  # blinks all the time
        while cues:
            cues.pop(0)
            w.k += 1
        w.update()
    t = QTimer(); t.timeout.connect(tick); t.start(150)
    QTimer.singleShot(300, lambda: print("ready", flush=True))
    app.exec()
""")


def screenshots(home, sid):
    return db_rows(home, 'SELECT "offset", path, width, height, bytes FROM media '
                         "WHERE session_id = ? AND kind = 'screenshot' ORDER BY \"offset\"", (sid,))


@pytest.mark.slow
def test_record_keeps_grabs_only_when_the_screen_changes(pulse, xvfb, _private_home):
    home = _private_home
    env = {**pulse.env, "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}
    painter = subprocess.Popen([sys.executable, "-c", PAINTER, str(ROOT)], env={**os.environ, **env}, cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rec = None
    try:
        assert painter.stdout.readline().strip() == "ready", painter.stderr.read()
        rec = CliProc("record", "--device", pulse.mic, "--screen-interval", "0.25", env=env)
        sid = int(rec.wait_line("recording session", 60).split("recording session ")[1].split()[0])
        pcm = home / "media" / str(sid) / "recording" / "mic.pcm"
        seconds = lambda: pcm.stat().st_size / 32000 if pcm.exists() else 0.0  # noqa: E731
        wait_for(lambda: len(screenshots(home, sid)) == 1, 30, "the first grab")
        wait_for(lambda: seconds() > 0.5, 30, "audio on disk (offsets count from its first sample)")
        for n in (2, 3):  # a new slide each time
            painter.stdin.write("next\n")
            painter.stdin.flush()
            wait_for(lambda n=n: len(screenshots(home, sid)) == n, 30, f"grab {n}")
        t = seconds()
        wait_for(lambda: seconds() >= t + 2.5, 30, "2.5 s more of the same slide (10 grabs)")
        assert len(screenshots(home, sid)) == 3, "an unchanged screen (a blinking dot) was kept"
        rec.p.send_signal(signal.SIGTERM)
        code, out = rec.finish(60)
    finally:
        if rec is not None:
            rec.kill()
        painter.kill()
        painter.wait(10)
    assert code == 0 and out.strip() == str(sid), rec.stderr
    assert "3 screenshot(s)" in rec.lines[-1], rec.stderr
    rows = screenshots(home, sid)
    offsets = [r[0] for r in rows]
    assert offsets == sorted(offsets) and offsets[0] < offsets[1] < offsets[2] and offsets[1] > 0.4
    with Library.open(home) as lib:
        duration = lib.get_session(sid).duration
    assert offsets[-1] < duration
    for _off, path, w, h, size in rows:
        with Image.open(home / path) as im:
            assert im.size == (w, h) == (1280, 800) and im.format == "JPEG"
        assert size == (home / path).stat().st_size


def test_record_without_a_screen_says_so_and_records(pulse):
    rec = CliProc("record", "--device", pulse.mic, "--screen-interval", "1", "--seconds", "1", env=pulse.env,
                  unset=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    code, out = rec.finish(60)
    assert code == 0 and out.strip().isdigit(), rec.stderr
    assert any("no screen to grab" in x and "recording without screen grabs" in x for x in rec.lines), rec.stderr
