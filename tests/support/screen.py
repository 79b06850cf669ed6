"""Screens for the capture tests: slide-like pictures, and a private Xvfb (the `xvfb` fixture,
registered for every test by tests/conftest.py; one X server per test module that uses it)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageDraw


def slide(k: int, size=(1600, 1000), dot: bool = False) -> Image.Image:
    """A slide-like picture: background, a title bar and text-like lines that depend on k."""
    rng = np.random.default_rng(k)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 120], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    for i in range(12):
        y = 180 + 60 * i
        d.rectangle([100, y, 100 + int(rng.integers(300, 1400)), y + 30], fill=(20, 20, 20))
    if dot:  # a blinking cursor / clock: must not count as a change
        d.rectangle([size[0] - 40, 10, size[0] - 28, 22], fill=(255, 0, 0))
    return img


@pytest.fixture(scope="module")
def xvfb():
    """A private X server on a free display number (other work on the machine may run its own)."""
    import random
    import time
    from pathlib import Path

    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (Debian: xvfb)")
    for num in random.sample(range(200, 900), 20):
        if Path(f"/tmp/.X{num}-lock").exists() or Path(f"/tmp/.X11-unix/X{num}").exists():
            continue
        proc = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while proc.poll() is None and not Path(f"/tmp/.X11-unix/X{num}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None and Path(f"/tmp/.X11-unix/X{num}").exists():
            break
        proc.kill()
        proc.wait(10)
    else:
        pytest.fail("Xvfb did not start on any free display")
    try:
        yield f":{num}"
    finally:
        proc.terminate()
        proc.wait(10)
