"""`python main.py serve` as a user runs it (under the offline guard), and what its clients send:
images as data: URLs, audio as base64 WAV."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

from tests.support import ROOT


class ServeProc:
    """The server in a child process; ``url`` once it says where it listens."""

    def __init__(self, *args: str, guard: bool = True, timeout: float = 120):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable] + (["-m", "tests.support.offline_guard"] if guard else []) + ["main.py", "serve", *args]
        self.p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        line = self.wait_line("serving ", timeout)
        m = re.search(r"at (http://\S+/v1)", line)
        assert m, line
        self.url = m.group(1)

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, fragment: str, timeout: float, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((x for x in self.lines[after:] if fragment in x), None)
            if hit is not None:
                return hit
            if self.p.poll() is not None:
                self._t.join(2)
                hit = next((x for x in self.lines[after:] if fragment in x), None)
                if hit is not None:
                    return hit
                raise AssertionError(f"exited {self.p.returncode} before '{fragment}':\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise AssertionError(f"no '{fragment}' within {timeout} s:\n" + "\n".join(self.lines))

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; its stderr."""
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self._t.join(5)
        return "\n".join(self.lines)


def png_data_url(size=(96, 64), color=(200, 40, 40)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def wav_base64(seconds: float = 1.0, freq: float = 330.0) -> str:
    import wave

    t = np.arange(int(seconds * 16000)) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode()
