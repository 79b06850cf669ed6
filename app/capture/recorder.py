"""Record the microphone and system audio to disk, crash-safely, as it arrives.

One `sd.InputStream` per source (mono float32 at 16 kHz; a device that refuses 16 kHz is opened at
its own rate and resampled in the writer). The audio callback only copies frames into a lock-free
ring buffer; one writer thread appends them to `<track>.pcm`, meters levels, watches the devices
and finalizes (see `tracks` for the format). `sd` is injectable: tests pass a fake.

`mic` and `system` are device specs (see `devices`): a name or part of one, "default",
"pulse:SOURCE", and for `system` also "auto"; None leaves the track out.

Audio flows some time after `start()` returns (PulseAudio: 0.4-2 s; its first ~0.4 s is never
delivered): `on_ready` / `wait_ready` tell when every track has delivered its first block; the
timeline starts at the first sample any track delivered. `max_seconds` ends the recording by itself once that much
audio is stored (counted in samples, not wall time), every track cut to exactly that length.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.capture.devices import (
    KIND,
    DeviceInfo,
    Source,
    default_sd,
    find_input,
    find_system_audio,
    list_inputs,
    resolve,
    with_env,
)
from app.capture.tracks import (
    FORMAT,
    SIDECAR,
    FolderLock,
    RecordingError,
    RecordingResult,
    Resampler,
    Ring,
    TrackFile,
    finalize,
    find_unfinished,
    recover,
    utc_now,
    write_sidecar,
)

__all__ = ["DeviceInfo", "Source", "Recorder", "RecordingError", "RecordingResult", "list_inputs", "find_input",
           "find_system_audio", "resolve", "find_unfinished", "recover"]


# PortAudio delivers audio in blocks of this many seconds: 100 ms blocks wake the callback ten times
# a second instead of ~90 (PortAudio's own choice with latency="high"), for a quarter less CPU while
# recording; the ring and the writer are sized for far more.
BLOCK_S = 0.1

def _latency(time_info, frames: int, rate: int) -> float:
    """Seconds between the first sample of this block being captured and now."""
    try:
        lat = time_info.currentTime - time_info.inputBufferAdcTime
    except AttributeError:
        lat = -1.0
    return lat if 0.0 <= lat < 1.0 and time_info.inputBufferAdcTime > 0 else frames / rate


def _close_stream(stream, abort: bool, timeout: float = 3.0) -> bool:
    """Stop and close a stream from a helper thread, giving up after `timeout` (never hang)."""
    def run():
        for fn in ((stream.abort if abort else stream.stop), stream.close):
            try:
                fn()
            except Exception:
                pass
    t = threading.Thread(target=run, name="minutely-close-stream", daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive()


class _Track:
    def __init__(self, source: Source):
        self.name, self.source = source.track, source
        self.stream: Any = None  # a sounddevice InputStream, made by start()
        self.ring: Ring = None  # type: ignore[assignment]  # made by start() before any callback runs
        self.rate = 0
        self.resample: Resampler | None = None
        self.file: TrackFile = None  # type: ignore[assignment]  # opened by start() before the writer runs
        self.overflows = 0
        self.first_cb = self.last_cb = 0.0
        self.count = 0  # frames delivered by callbacks, paused ones included
        self.lags: collections.deque = collections.deque()  # (time, lag in frames, overflows so far)
        self.epoch = -1
        self.marks: collections.deque = collections.deque()  # (ring position, epoch, capture time)
        self.finished = False  # the stream ended by itself (finished_callback)
        self.closed = False
        self.lost = False
        self.level = (0.0, 0.0)
        self.acc = [0.0, 0, 0.0]  # sum of squares, samples, peak since the last level update


class Recorder:
    """`start()`, `pause()`, `resume()`, `stop() -> RecordingResult`. If a device disappears the
    recorder stops by itself, saves everything and sets `error`; `wait()` or `on_stop` tell."""

    close_timeout = 3.0  # seconds to wait for a stream to stop before abandoning it (never hang)
    lost_audio_s = 0.25  # audio missing from a stream (not an overflow) that means the device is gone

    def __init__(self, folder: Path, mic: str | None = "default", system: str | None = None, rate: int = 16000,
                 on_level: Callable[[str, float, float], None] | None = None, sd=None, *,
                 on_audio: Callable[[str, int, np.ndarray], None] | None = None,
                 on_stop: Callable[[RecordingResult], None] | None = None,
                 on_ready: Callable[[], None] | None = None, max_seconds: float | None = None,
                 stall_timeout: float = 5.0, start_timeout: float = 10.0, buffer_seconds: float = 30.0,
                 keep_pcm: bool = False, block_seconds: float = BLOCK_S):
        self.folder, self.mic, self.system, self.rate = Path(folder), mic, system, int(rate)
        self.block_seconds = block_seconds  # 0: let PortAudio choose
        self.on_level, self.on_audio, self.on_stop, self.on_ready = on_level, on_audio, on_stop, on_ready
        if max_seconds is not None and max_seconds <= 0:
            raise RecordingError("a recording's length must be more than 0 seconds")
        self._limit = None if max_seconds is None else max(1, round(max_seconds * self.rate))  # frames per track
        self._full_at: float | None = None  # when the first track reached the limit
        self._sd = sd
        self._stall, self._start_timeout, self._buffer_s = stall_timeout, start_timeout, buffer_seconds
        self._keep_pcm = keep_pcm
        self.state = "idle"  # idle, recording, paused, stopping, stopped
        self.error: str | None = None
        self.notices: list[str] = []
        self._tracks: dict[str, _Track] = {}
        self._paused = False
        self._epoch = 0
        self._epoch_base: dict[int, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._stop_evt, self._ready, self._done = threading.Event(), threading.Event(), threading.Event()
        self._stopping = False
        self._result: RecordingResult | None = None
        self._meta: dict = {}
        self._dirty = False
        self._lockfile = FolderLock(self.folder)
        self._writer: threading.Thread | None = None

    # --- public state -----------------------------------------------------------------------
    @property
    def tracks(self) -> list[str]:
        return list(self._tracks)

    @property
    def levels(self) -> dict[str, tuple[float, float]]:
        """(rms, peak) per track, linear 0..1, updated ~20 times a second."""
        return {n: t.level for n, t in self._tracks.items()}

    @property
    def overflows(self) -> int:
        return sum(t.overflows for t in self._tracks.values())

    @property
    def dropped_frames(self) -> int:
        return sum(t.ring.dropped for t in self._tracks.values() if t.ring is not None)

    @property
    def frames_written(self) -> dict[str, int]:
        return {n: t.file.frames for n, t in self._tracks.items() if t.file}

    @property
    def duration(self) -> float:
        return max(self.frames_written.values(), default=0) / self.rate

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once every track has delivered audio (PulseAudio takes 0.4-2 s to start)."""
        return self._ready.wait(timeout)

    def wait(self, timeout: float | None = None) -> RecordingResult | None:
        """The result once the recording has ended (by `stop()` or by a device failure)."""
        self._done.wait(timeout)
        return self._result

    # --- control ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.state != "idle":
            raise RecordingError("this recorder was already started")
        sd = self._sd = default_sd(self._sd)
        sources = []
        if self.mic is not None:
            sources.append(resolve("mic", self.mic, sd))
        if self.system is not None:
            try:
                src, why = (find_system_audio(sd) if self.system in ("auto", "default")
                            else (resolve("system", self.system, sd), ""))
            except RecordingError as e:
                src, why = None, str(e)
            if src is None:
                self.notices.append(why)
            else:
                sources.append(src)
        if not sources:
            raise RecordingError("nothing to record: no microphone and no system audio")
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / SIDECAR).exists():
            raise RecordingError(f"{self.folder} already holds a recording")
        if not self._lockfile.acquire():
            raise RecordingError(f"{self.folder} is being recorded by another program")
        try:
            for src in sources:
                tr = _Track(src)
                try:
                    tr.stream = self._open(tr)
                except RecordingError as e:
                    if src.track == "mic" or len(sources) == 1:
                        raise
                    self.notices.append(str(e) + "; recording the microphone only")
                    continue
                self._tracks[tr.name] = tr
            self._meta = {
                "format": FORMAT, "version": 1, "state": "recording", "rate": self.rate, "channels": 1,
                "sample_format": "s16le", "started": utc_now(), "ended": None,
                "tracks": {n: {"pcm": f"{n}.pcm", "device": t.source.label, "device_rate": t.rate,
                               "resampled": t.rate != self.rate} for n, t in self._tracks.items()},
                "paused": [], "notices": self.notices, "error": None, "counters": {}}
            write_sidecar(self.folder, self._meta)
            for n, t in self._tracks.items():
                t.file = TrackFile(self.folder / f"{n}.pcm")
            self._t_start = time.monotonic()
            for t in self._tracks.values():  # the ring holds what arrives before the writer runs
                t.stream.start()
        except Exception as e:
            self._abort_start()
            if isinstance(e, RecordingError):
                raise
            raise RecordingError(f"the recording could not start: {e}") from e
        self.state = "recording"
        self._writer = threading.Thread(target=self._run, name="minutely-recorder", daemon=True)
        self._writer.start()

    def _abort_start(self) -> None:
        """Undo a start that failed: close what was opened, remove the (empty) files."""
        for t in self._tracks.values():
            if t.stream is not None:
                t.closed = True
                _close_stream(t.stream, abort=True, timeout=self.close_timeout)
            if t.file is not None:
                t.file.close()
                t.file.path.unlink(missing_ok=True)
        (self.folder / SIDECAR).unlink(missing_ok=True)
        self._lockfile.release()
        self.state = "stopped"

    def pause(self) -> None:
        with self._lock:
            if self.state != "recording":
                return
            self._paused = True
            self.state = "paused"
            self._pause_t = time.monotonic()
            self._meta["paused"].append({"at": None, "started": utc_now(), "seconds": None})
            self._meta["state"] = "paused"
            self._dirty = True

    def resume(self) -> None:
        with self._lock:
            if self.state != "paused":
                return
            self._meta["paused"][-1]["seconds"] = round(time.monotonic() - self._pause_t, 3)
            self._meta["state"] = "recording"
            self._epoch += 1  # before unpausing: the first block after the pause opens the new epoch
            self._paused = False
            self.state = "recording"
            self._dirty = True

    def stop(self, timeout: float = 60.0) -> RecordingResult:
        """Stop, flush and finalize (WAVs + mix: seconds for a long meeting; call it off the GUI
        thread). After a device failure it returns the result already saved."""
        if self._writer is None:
            raise RecordingError("the recording was never started")
        with self._lock:
            self._stopping = True
            if self.state != "stopped":
                self.state = "stopping"
        self._close_all(abort=False)
        self._stop_evt.set()
        if threading.current_thread() is not self._writer:
            self._done.wait(timeout)
        if self._result is None:
            raise RecordingError("the recording did not finish saving in time; it can be recovered")
        return self._result

    # --- the audio thread -------------------------------------------------------------------
    def _open(self, tr: _Track):
        src = tr.source
        rates = [self.rate] + ([int(src.default_rate)] if src.default_rate and int(src.default_rate) != self.rate
                               else [])
        chans = [1] + ([min(src.channels, 2)] if src.channels > 1 else [])
        last: Exception | None = None
        for ch in chans:
            for rate in rates:
                tr.ring, tr.rate = Ring(int(rate * self._buffer_s), ch), rate
                try:
                    with with_env(src.env):
                        stream = self._sd.InputStream(
                            device=src.device, channels=ch, samplerate=rate, dtype="float32", latency="high",
                            blocksize=int(rate * self.block_seconds),
                            callback=self._callback(tr), finished_callback=lambda: setattr(tr, "finished", True),
                            extra_settings=src.extra_settings)
                except Exception as e:  # PortAudioError, ValueError...: try the next format
                    last = e
                    continue
                tr.resample = Resampler(rate, self.rate) if rate != self.rate else None
                return stream
        raise RecordingError(f"cannot open the {KIND.get(tr.name, tr.name)} '{src.label}': {last}")

    def _callback(self, tr: _Track):
        ring, mono, rate = tr.ring, time.monotonic, tr.rate

        def callback(indata, frames, time_info, status):  # copy into the ring; nothing else
            now = mono()
            if status and status.input_overflow:
                tr.overflows += 1
            tr.last_cb = now
            tr.count += frames
            if self._paused:
                return
            if tr.epoch != self._epoch:
                tr.epoch = self._epoch
                tr.marks.append((ring.w, tr.epoch, now - _latency(time_info, frames, rate)))
            ring.write(indata)
        return callback

    # --- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        next_sync = next_meta = time.monotonic()
        try:
            while not self._stop_evt.wait(0.05):
                for t in self._tracks.values():
                    self._drain(t)
                self._meter()
                self._watch()
                self._check_limit()
                now = time.monotonic()
                sync = now >= next_sync
                for t in self._tracks.values():
                    t.file.flush(sync)
                if sync:
                    next_sync = now + 1.0
                if self._dirty or now >= next_meta:
                    self._save_meta()
                    next_meta = now + 5.0
        except Exception as e:  # a full disk, an I/O error: stop, and save what can be saved
            self.error = self.error or f"the recording was stopped: writing it failed ({e})"
        self._close_all(abort=True)
        try:
            for t in self._tracks.values():
                self._drain(t)
                t.file.close()
            with self._lock:
                if self._meta["paused"] and self._meta["paused"][-1]["seconds"] is None:  # stopped while paused
                    self._meta["paused"][-1]["seconds"] = round(time.monotonic() - self._pause_t, 3)
                self._meta["ended"] = utc_now()
            self._save_meta()
            result = finalize(self.folder, self._meta, keep_pcm=self._keep_pcm)
        except Exception as e:
            self.error = self.error or f"the recording could not be saved ({e}); it can be recovered"
            result = RecordingResult(self.folder, self.duration, {}, None, self.overflows, self.error,
                                     False, self.dropped_frames, list(self.notices))
        self._lockfile.release()
        self._result = result
        self.state = "stopped"
        self._done.set()
        self._notify(self.on_stop, result)

    def _notify(self, fn, *args) -> None:
        """Call a listener; its bugs must never stop a recording."""
        if fn is not None:
            try:
                fn(*args)
            except Exception as e:
                if not getattr(self, "_listener_failed", False):
                    self._listener_failed = True
                    self.notices.append(f"a listener failed: {e!r}")

    def _drain(self, tr: _Track) -> None:
        while True:
            end = tr.ring.w  # snapshot first: a mark before `end` is already in `marks`
            mark = tr.marks[0] if tr.marks else None
            if mark is not None and mark[0] <= tr.ring.r:
                tr.marks.popleft()
                self._begin_epoch(tr, mark)
                continue
            x = tr.ring.read(min(end, mark[0]) if mark else end)
            if not len(x):
                return
            if tr.resample is not None:
                x = tr.resample(x)
            position = tr.file.frames
            if self._limit is not None:  # what arrives after the limit is read (the ring must not fill) and dropped
                x = x[:max(0, self._limit - position)]
            tr.file.write(x)
            if len(x):
                tr.acc[0] += float(np.dot(x, x))
                tr.acc[1] += len(x)
                tr.acc[2] = max(tr.acc[2], float(np.abs(x).max()))
                self._notify(self.on_audio, tr.name, position, x)

    def _begin_epoch(self, tr: _Track, mark: tuple[int, int, float]) -> None:
        """Keep the tracks on one timeline: each track starts (and resumes) at the position its
        first sample's capture time gives, relative to the first track to start."""
        _, epoch, t_first = mark
        if epoch not in self._epoch_base:
            base = max((t.file.frames for t in self._tracks.values()), default=0)
            self._epoch_base[epoch] = (base, t_first)
            with self._lock:  # epoch e begins when pause e-1 ends: that is where the pause sits
                for p in self._meta["paused"][:epoch]:
                    p["at"] = round(base / self.rate, 3) if p["at"] is None else p["at"]
                self._dirty = True
        base, t0 = self._epoch_base[epoch]
        start = base + max(0, round((t_first - t0) * self.rate))
        tr.file.pad_to(start if self._limit is None else min(start, self._limit))
        if tr.resample is not None:  # a pause is a discontinuity: start the filter afresh
            tr.resample = Resampler(tr.rate, self.rate)

    def _meter(self) -> None:
        now = time.monotonic()
        for t in self._tracks.values():
            s, n, peak = t.acc
            if n:
                t.level = (float(np.sqrt(s / n)), min(peak, 1.0))
            elif self._paused or now - t.last_cb > 0.25:
                t.level = (0.0, 0.0)
            t.acc = [0.0, 0, 0.0]
            self._notify(self.on_level, t.name, *t.level)

    def _watch(self) -> None:
        """Notice a device that is gone: its stream ended or went inactive, an error from sd, no
        callback for `stall_timeout` s, or audio lost without an overflow (see `_lost_audio`)."""
        now = time.monotonic()
        live = [t for t in self._tracks.values() if not t.lost]
        if not self._ready.is_set() and live and all(t.last_cb for t in live):
            self._ready.set()
            self._notify(self.on_ready)
        if self._stopping:
            return
        for t in live:
            try:
                active = t.stream.active
            except Exception:
                active = False
            never = not t.last_cb and now - self._t_start > self._start_timeout
            stalled = t.last_cb and now - t.last_cb > self._stall
            if t.finished or not active or never or stalled or self._lost_audio(t, now):
                self._lose(t, "gave no audio" if never else "disappeared")

    def _check_limit(self) -> None:
        """End the recording once every live track holds `max_seconds` of audio (a track still
        short of it 1 s after the first got there, a late or stalled one, ends short)."""
        if self._limit is None or self._stopping:
            return
        live = [t for t in self._tracks.values() if not t.lost]
        full = [t.file.frames >= self._limit for t in live]
        if not any(full):
            return
        now = time.monotonic()
        self._full_at = self._full_at or now
        if all(full) or now - self._full_at > 1.0:
            with self._lock:
                self._stopping = True
                self.state = "stopping"
            self._stop_evt.set()

    def _lost_audio(self, t: _Track, now: float) -> bool:
        """True when the stream has fallen behind the clock by more than `lost_audio_s` within a
        few seconds and no overflow explains it. Measured here: when a PulseAudio source goes
        away, the ALSA plugin stalls 0.5-2 s, PortAudio restarts the stream and it goes on,
        silently, from another source; the stalled audio is never delivered. A late callback
        thread (a busy CPU) delivers its backlog in a burst instead, so it does not count."""
        if not t.last_cb:
            return False
        lags = t.lags
        lags.append((now, t.last_cb * t.rate - t.count, t.overflows))
        while lags[0][0] < now - 10.0:
            lags.popleft()
        if lags[0][2] != t.overflows:  # audio lost to an overflow: counted, not a lost device
            lags.clear()
            return False
        old = [lag for ts, lag, _ in lags if ts <= now - 2.0]
        if not old:
            return False
        recent = min(lag for ts, lag, _ in lags if ts >= now - 0.5)
        return recent - min(old) > self.lost_audio_s * t.rate

    def _lose(self, tr: _Track, how: str) -> None:
        with self._lock:
            if self._stopping:  # stop() is closing the streams: an inactive stream is expected
                return
            tr.lost = True
        what = f"the {KIND.get(tr.name, tr.name)} '{tr.source.label}' {how}"
        others = [t for t in self._tracks.values() if not t.lost]
        if tr.name != "mic" and others:
            self.notices.append(f"{what}; the recording goes on with the microphone only")
            tr.closed = True
            _close_stream(tr.stream, abort=True, timeout=self.close_timeout)
        else:
            self.error = f"{what}; the recording was stopped and saved"
            self._stopping = True
            self.state = "stopping"
            self._stop_evt.set()
        with self._lock:
            self._meta["error"] = self.error
            self._dirty = True

    def _close_all(self, abort: bool) -> None:
        for t in self._tracks.values():
            with self._lock:
                if t.closed or t.stream is None:
                    continue
                t.closed = True
            if not _close_stream(t.stream, abort=abort, timeout=self.close_timeout):
                self.notices.append(f"the {KIND.get(t.name, t.name)} '{t.source.label}' did not close in time")

    def _save_meta(self) -> None:
        with self._lock:
            self._meta["counters"] = {"overflows": self.overflows, "dropped_frames": self.dropped_frames,
                                      "frames": self.frames_written}
            self._meta["duration"] = round(self.duration, 3)
            self._meta["error"] = self.error
            self._dirty = False
            snapshot = json.loads(json.dumps(self._meta))
        write_sidecar(self.folder, snapshot)  # the fsync happens outside the lock pause() takes
