"""Play a session's audio from a given time (click a segment, hear it), at a chosen speed.

Decoding (PyAV, seeking to the start), the speed change and output (sounddevice) run in a
thread of their own; ``play()`` returns at once and a new ``play()``, ``halt()`` or ``stop()``
ends the previous one. ``halt()`` never waits for the old thread (the window calls it on its
UI thread); the old thread stops at its next block and no longer moves ``position`` or calls
its ``on_done``. Speed (0.5-2x) goes through FFmpeg's ``atempo`` filter, which keeps the pitch
(a time-stretch, about 7 ms of CPU per second of 48 kHz audio). No Qt: the window calls it,
the tests drive it against the private PulseAudio sink or an injected ``sd``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from app.errors import one_line

from .audio import MediaError, open_audio

log = logging.getLogger("minutely.player")

SPEEDS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


class _Run:
    """One playback: its stop flag and where it is."""

    def __init__(self, start: float):
        self.stop = threading.Event()
        self.position = start
        self.thread: threading.Thread | None = None


class Player:
    def __init__(self, device: str | int | None = None, sd=None):
        self._device = device
        self._sd = sd
        self._run: _Run | None = None
        self._threads: list[threading.Thread] = []   # every run's thread not yet seen ended
        self._last = 0.0             # where the last run was when it ended or was halted
        self.error: str | None = None

    @property
    def position(self) -> float:
        """Seconds into the file of the last block sent to the device (of the current run)."""
        r = self._run
        return r.position if r is not None else self._last

    @property
    def playing(self) -> bool:
        r = self._run
        return r is not None and not r.stop.is_set() and r.thread is not None and r.thread.is_alive()

    def play(self, path: str | Path, start: float = 0.0, end: float | None = None,
             on_done: Callable[[str | None], None] | None = None, speed: float = 1.0) -> None:
        """Play ``path`` from ``start`` seconds (to ``end``, else the end of the file) at ``speed``."""
        self.halt()
        self.error = None
        run = _Run(start)
        t = threading.Thread(target=self._thread, args=(Path(path), start, end, run, on_done, float(speed)),
                             name="minutely-player", daemon=True)
        run.thread = t
        self._run = run
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def halt(self) -> float:
        """End playback without waiting for the thread; returns the position it had reached."""
        r = self._run
        if r is not None:
            r.stop.set()
            self._last = r.position
            self._run = None
        return self._last

    def stop(self, timeout: float = 2.0) -> None:
        """End playback and wait (up to ``timeout``) for its thread and those of runs halted
        before (at shutdown: nothing may still hold the audio device)."""
        self.halt()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        self._threads = [x for x in self._threads if x.is_alive()]

    def wait(self, timeout: float | None = None) -> bool:
        r = self._run
        if r is None or r.thread is None:
            return True
        r.thread.join(timeout)
        return not r.thread.is_alive()

    def _thread(self, path: Path, start: float, end: float | None, run: _Run,
                on_done: Callable[[str | None], None] | None, speed: float) -> None:
        err = None
        try:
            self._play(path, start, end, run, speed)
        except MediaError as e:
            err = str(e)
        except Exception as e:  # noqa: BLE001 - a device error is one line for the user
            err = f"cannot play audio: {one_line(e)}"
            log.warning("playback failed", exc_info=True)
        if run.stop.is_set():
            return  # halted: a newer run (or nothing) owns the player now
        self.error = err
        if on_done is not None:
            on_done(err)

    def _play(self, path: Path, start: float, end: float | None, run: _Run, speed: float) -> None:
        import av

        sd = self._sd
        if sd is None:
            import sounddevice

            sd = sounddevice
        stop = run.stop
        info = sd.query_devices(self._device, "output")
        rate = int(info["default_samplerate"]) or 48000
        container, stream = open_audio(path)
        try:
            if start > 0:
                container.seek(int(start * 1_000_000), any_frame=False, backward=True)  # microseconds
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            tempo = _Tempo(rate, speed) if abs(speed - 1.0) > 1e-3 else None
            with sd.OutputStream(samplerate=rate, channels=1, dtype="float32", device=self._device) as out:
                t0 = start
                for frame in container.decode(stream):
                    if stop.is_set():
                        return
                    t0 = float(frame.time) if frame.time is not None else t0
                    for block in resampler.resample(frame):
                        a = block.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                        if t0 < start:  # seek lands on a key frame before the start
                            a = a[int((start - t0) * rate):]
                            t0 = start
                        if end is not None:
                            a = a[: max(0, int((end - t0) * rate))]
                        t0 += a.size / rate
                        b = tempo.push(a) if tempo is not None and a.size else a
                        if b.size:
                            out.write(b.reshape(-1, 1))
                        if stop.is_set():
                            return
                        run.position = t0
                    if end is not None and t0 >= end:
                        return
                if tempo is not None and not stop.is_set():
                    b = tempo.flush()
                    if b.size:
                        out.write(b.reshape(-1, 1))
        except av.error.FFmpegError as e:
            raise MediaError(f"cannot decode {path.name}: {e}") from None
        finally:
            container.close()


class _Tempo:
    """FFmpeg's ``atempo`` (speed without a pitch change) over mono float32 blocks."""

    def __init__(self, rate: int, speed: float):
        import av.filter

        self.rate = rate
        self.graph = av.filter.Graph()
        src = self.graph.add_abuffer(format="flt", sample_rate=rate, layout="mono", time_base=Fraction(1, rate))
        tempo = self.graph.add("atempo", f"{max(0.5, min(2.0, speed)):.3f}")
        sink = self.graph.add("abuffersink")
        src.link_to(tempo)
        tempo.link_to(sink)
        self.graph.configure()
        self.pts = 0

    def push(self, a: np.ndarray) -> np.ndarray:
        import av

        frame = av.AudioFrame.from_ndarray(a.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate, frame.pts = self.rate, self.pts
        self.pts += a.size
        self.graph.push(frame)
        return self._pull()

    def flush(self) -> np.ndarray:
        self.graph.push(None)
        return self._pull()

    def _pull(self) -> np.ndarray:
        import av

        out = []
        while True:
            try:
                f = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            out.append(f.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(out) if out else np.zeros(0, np.float32)
