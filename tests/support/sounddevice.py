"""A stand-in for sounddevice's output, as app.media.player uses it (``query_devices`` and an
``OutputStream`` it writes blocks to), for tests of the logic around real decoding."""

from __future__ import annotations

import threading
import time

import numpy as np


class FakeOutput:
    """``rate``: the device's rate; ``pace``: blocks are taken at that many times real time
    (None: as fast as they come); ``keep``: keep every block (``blocks``). ``frames`` counts what
    was written."""

    def __init__(self, rate: int = 48000, pace: float | None = None, keep: bool = False):
        self.rate, self.pace, self.keep = rate, pace, keep
        self.frames = 0
        self.blocks: list[np.ndarray] = []
        self.lock = threading.Lock()

    def query_devices(self, _device, _kind):
        return {"default_samplerate": self.rate}

    def OutputStream(self, **_kw):  # noqa: N802 - sounddevice's name
        out = self

        class Stream:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def write(self, a):
                with out.lock:
                    out.frames += len(a)
                    if out.keep:
                        out.blocks.append(np.asarray(a).reshape(-1).copy())
                if out.pace:
                    time.sleep(len(a) / out.rate / out.pace)

        return Stream()
