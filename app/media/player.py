"""Play a session's audio from a given time (click a segment, hear it).

Decoding (PyAV, seeking to the start) and output (sounddevice) run in a
thread of their own; ``play()`` returns at once and a new ``play()`` or
``stop()`` ends the previous one. No Qt: the window calls it, the tests drive
it against the private PulseAudio sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.errors import one_line

from .audio import MediaError, open_container

log = logging.getLogger("minutely.player")


class Player:
    def __init__(self, device: str | int | None = None, sd=None):
        self._device = device
        self._sd = sd
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position = 0.0          # seconds into the file of the last block sent
        self.error: str | None = None

    @property
    def playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def play(self, path: str | Path, start: float = 0.0, end: float | None = None,
             on_done: Callable[[str | None], None] | None = None) -> None:
        """Play ``path`` from ``start`` seconds (to ``end``, else the end of the file)."""
        self.stop()
        self._stop = threading.Event()
        self.error = None
        self.position = start
        t = threading.Thread(target=self._run, args=(Path(path), start, end, self._stop, on_done),
                             name="minutely-player", daemon=True)
        self._thread = t
        t.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def wait(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    def _run(self, path: Path, start: float, end: float | None, stop: threading.Event,
             on_done: Callable[[str | None], None] | None) -> None:
        err = None
        try:
            self._play(path, start, end, stop)
        except MediaError as e:
            err = str(e)
        except Exception as e:  # noqa: BLE001 - a device error is one line for the user
            err = f"cannot play audio: {one_line(e)}"
            log.warning("playback failed", exc_info=True)
        self.error = err
        if on_done is not None:
            on_done(err)

    def _play(self, path: Path, start: float, end: float | None, stop: threading.Event) -> None:
        import av

        sd = self._sd
        if sd is None:
            import sounddevice

            sd = sounddevice
        info = sd.query_devices(self._device, "output")
        rate = int(info["default_samplerate"]) or 48000
        container = open_container(path)
        try:
            if not container.streams.audio:
                raise MediaError(f"no audio track in {path.name}")
            stream = container.streams.audio[0]
            if start > 0:
                container.seek(int(start * 1_000_000), any_frame=False, backward=True)  # microseconds
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            with sd.OutputStream(samplerate=rate, channels=1, dtype="float32", device=self._device) as out:
                for frame in container.decode(stream):
                    if stop.is_set():
                        return
                    t0 = float(frame.time) if frame.time is not None else start
                    for block in resampler.resample(frame):
                        a = block.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                        if t0 < start:  # seek lands on a key frame before the start
                            skip = int((start - t0) * rate)
                            a = a[skip:]
                            t0 = start
                        if end is not None:
                            a = a[: max(0, int((end - t0) * rate))]
                        if a.size:
                            out.write(a.reshape(-1, 1))
                        t0 += block.samples / rate
                        self.position = t0
                    if end is not None and t0 >= end:
                        return
        except av.error.FFmpegError as e:
            raise MediaError(f"cannot decode {path.name}: {e}") from None
        finally:
            container.close()
