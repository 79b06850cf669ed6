"""The on-disk format of a recording, its finalization to WAV, and crash recovery.

A recording folder holds, while recording:

    recording.json   the sidecar (rate, channels, sample format, started, tracks, paused spans, state),
                     replaced atomically on every change of state and every few seconds
    mic.pcm          raw little-endian int16 mono PCM at `rate`, appended as it arrives
    system.pcm       the same for system audio (when recorded)
    recording.lock   held (flock / msvcrt.locking) by the recording process; the OS drops it
                     when the process dies, so a crashed recording is told from a live one

The PCM files are flushed to the OS about 20 times a second and fsync'ed every second, so a
killed process (kill -9) loses at most what sat in the ring buffer (~50 ms) and a power cut at
most ~1 s. Both tracks share one timeline: sample i of mic.pcm and of system.pcm were captured at
about the same moment (the later-starting track is padded with silence at its start and after
every pause). Finalizing writes `<track>.wav` and `mix.wav` (16-bit mono WAV, streamed in chunks,
never loaded whole), marks the sidecar `finished` (or `recovered`) and removes the PCM files.
"""

from __future__ import annotations

import json
import os
import sys
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.errors import MinutelyError
from app.fsutil import atomic_write_text

SIDECAR = "recording.json"
LOCKFILE = "recording.lock"
FORMAT = "minutely.recording"
DONE_STATES = ("finished", "recovered")
_WIDTH = {"s16le": 2, "f32le": 4}
_CHUNK = 1 << 16  # frames per chunk when finalizing


class RecordingError(MinutelyError):
    """A recording could not start, or a folder cannot be recovered. One line, fit for a user."""


@dataclass
class RecordingResult:
    folder: Path
    duration: float  # seconds on the timeline (pauses excluded)
    tracks: dict[str, Path]  # track name ("mic", "system") -> its WAV
    mix: Path | None
    overflows: int = 0
    error: str | None = None
    recovered: bool = False
    dropped_frames: int = 0
    notices: list[str] = field(default_factory=list)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --- sidecar and lock -------------------------------------------------------------------------

def read_sidecar(folder: Path) -> dict:
    return json.loads((Path(folder) / SIDECAR).read_text(encoding="utf-8"))


def write_sidecar(folder: Path, meta: dict) -> None:
    meta["updated"] = utc_now()
    atomic_write_text(Path(folder) / SIDECAR, json.dumps(meta, indent=1))


class FolderLock:
    """An exclusive, non-blocking lock on `folder/recording.lock`, released by the OS on death."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCKFILE
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        os.close(fd)  # closing drops flock and msvcrt locks alike
        try:
            self.path.unlink()
        except OSError:
            pass


def is_live(folder: Path) -> bool:
    """True while some process (this one included) is recording into `folder`."""
    if not (Path(folder) / LOCKFILE).exists():
        return False
    lock = FolderLock(folder)
    if lock.acquire():
        lock.release()
        return False
    return True


# --- while recording --------------------------------------------------------------------------

class Ring:
    """Single-producer single-consumer ring of float32 frames: the audio callback writes, the
    writer thread reads. No locks: only the producer moves `w`, only the consumer moves `r`."""

    def __init__(self, frames: int, channels: int):
        self.buf = np.zeros((frames, channels), np.float32)
        self.cap = frames
        self.w = 0  # total frames ever written
        self.r = 0  # total frames ever read
        self.dropped = 0

    def write(self, data: np.ndarray) -> None:  # audio thread: copy only
        n = len(data)
        free = self.cap - (self.w - self.r)
        if n > free:
            self.dropped += n - free
            n = free
            if n <= 0:
                return
        i = self.w % self.cap
        k = min(n, self.cap - i)
        self.buf[i:i + k] = data[:k]
        if k < n:
            self.buf[:n - k] = data[k:n]
        self.w += n

    def read(self, upto: int | None = None) -> np.ndarray:
        """Frames from `r` to `upto` (default: all written so far), as mono float32."""
        end = self.w if upto is None else min(upto, self.w)
        n = end - self.r
        if n <= 0:
            return np.zeros(0, np.float32)
        i = self.r % self.cap
        k = min(n, self.cap - i)
        parts = [self.buf[i:i + k]] + ([self.buf[:n - k]] if k < n else [])
        block = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
        self.r = end
        return block[:, 0].copy() if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


class Resampler:
    """Streaming sample-rate converter: a windowed-sinc low-pass at the source rate, then linear
    interpolation at the target positions (fine for speech; used only when a device refuses the
    target rate, e.g. 48 kHz-only hardware)."""

    def __init__(self, src: int, dst: int, taps: int = 133):
        self.src, self.dst = int(src), int(dst)
        cutoff = 0.45 * min(self.src, self.dst) / self.src  # cycles per source sample
        n = np.arange(taps) - (taps - 1) / 2
        h = np.sinc(2 * cutoff * n) * np.blackman(taps)
        self.h = (h / h.sum()).astype(np.float32)
        self.hist = np.zeros(taps - 1, np.float32)
        self.prev = np.zeros(1, np.float32)
        self.base = 0  # filtered-sample index of the next chunk's first output of convolve
        self.k = 0  # next output sample index
        self.delay = (taps - 1) / 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.src == self.dst or not len(x):
            return x
        xx = np.concatenate([self.hist, x])
        self.hist = xx[-(len(self.h) - 1):]
        y = np.convolve(xx, self.h, "valid").astype(np.float32)  # len(x) samples from self.base
        yy = np.concatenate([self.prev, y])  # yy[0] is filtered index base - 1
        last = self.base + len(y) - 1  # highest filtered index available
        # output k sits at filtered index k*src/dst + delay (the filter's delay removed)
        k_end = int(np.floor((last - self.delay) * self.dst / self.src)) + 1
        ks = np.arange(self.k, max(self.k, k_end))
        pos = ks * (self.src / self.dst) + self.delay - (self.base - 1)
        i = np.clip(np.floor(pos).astype(np.int64), 0, len(yy) - 1)
        f = (pos - i).astype(np.float32)
        out = yy[i] * (1 - f) + yy[np.minimum(i + 1, len(yy) - 1)] * f
        self.k += len(ks)
        self.base += len(y)
        self.prev = y[-1:]
        return out.astype(np.float32)


class TrackFile:
    """Appends int16 PCM to `<track>.pcm`; `frames` counts what is in the file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.f = open(self.path, "ab")
        self.frames = self.f.tell() // 2

    def write(self, x: np.ndarray) -> None:
        if len(x):
            self.f.write(np.rint(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
            self.frames += len(x)

    def pad_to(self, frames: int) -> None:
        while self.frames < frames:  # in chunks: a long gap never becomes one big allocation
            self.write(np.zeros(min(frames - self.frames, _CHUNK), np.float32))

    def flush(self, sync: bool = False) -> None:
        self.f.flush()
        if sync:
            os.fsync(self.f.fileno())

    def close(self) -> None:
        if not self.f.closed:
            self.flush(sync=True)
            self.f.close()


# --- finalization and recovery ----------------------------------------------------------------

def _pcm_frames(path: Path, fmt: str) -> int:
    return path.stat().st_size // _WIDTH[fmt] if path.exists() else 0


def pcm_to_wav(pcm: Path, wav: Path, rate: int, fmt: str = "s16le") -> int:
    """Stream a PCM file into a 16-bit mono WAV (written aside, fsync'ed, then renamed). A partial
    last sample (a write cut short by a crash) is ignored. Returns the number of frames."""
    width = _WIDTH[fmt]
    frames = _pcm_frames(pcm, fmt)
    tmp = wav.with_name(f".{wav.name}.part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.setnframes(frames)  # the header is right from the start: no seek back on close
        if frames:
            with open(pcm, "rb") as f:
                left = frames
                while left:
                    n = min(left, _CHUNK)
                    data = f.read(n * width)
                    if fmt == "f32le":
                        x = np.frombuffer(data, "<f4")
                        data = np.rint(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
                    w.writeframesraw(data)
                    left -= n
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, wav)
    return frames


def mix_wavs(wavs: list[Path], out: Path, rate: int) -> int:
    """Sum mono 16-bit WAVs into one, each scaled by 1/len(wavs) (headroom: never clips);
    shorter tracks are padded with silence. Streams in chunks. Returns the number of frames."""
    readers = [wave.open(str(p), "rb") for p in wavs]
    try:
        frames = max((r.getnframes() for r in readers), default=0)
        tmp = out.with_name(f".{out.name}.part")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.setnframes(frames)
            for start in range(0, frames, _CHUNK):
                n = min(_CHUNK, frames - start)
                acc = np.zeros(n, np.int32)
                for r in readers:
                    x = np.frombuffer(r.readframes(n), "<i2")
                    acc[:len(x)] += x
                if len(readers) > 1:
                    acc //= len(readers)
                w.writeframesraw(acc.astype("<i2").tobytes())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
        return frames
    finally:
        for r in readers:
            r.close()


def join_wavs(parts: list[tuple[Path, float]], out: Path, rate: int) -> int:
    """One mono 16-bit WAV of `parts` (path, offset in seconds) in order, each starting at its offset
    (silence before it; a part that overlaps the next is cut where the next begins). Streams in
    chunks; written beside `out` and renamed. Returns the number of frames."""
    tmp = out.with_name(f".{out.name}.part")
    frames = 0
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        parts = sorted(parts, key=lambda p: p[1])
        for i, (path, offset) in enumerate(parts):
            start = max(frames, round(offset * rate))
            end = round(parts[i + 1][1] * rate) if i + 1 < len(parts) else None
            while frames < start:
                n = min(_CHUNK, start - frames)
                w.writeframesraw(bytes(2 * n))
                frames += n
            with wave.open(str(path), "rb") as r:
                left = r.getnframes() if end is None else min(r.getnframes(), max(0, end - frames))
                while left > 0:
                    x = r.readframes(min(_CHUNK, left))
                    if not x:
                        break
                    w.writeframesraw(x)
                    frames += len(x) // 2
                    left -= len(x) // 2
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return frames


def finalize(folder: Path, meta: dict, *, state: str = "finished", keep_pcm: bool = False) -> RecordingResult:
    """WAVs from the PCM on disk, the mix, then the sidecar marked `state`, then the PCM removed.
    Idempotent: a crash anywhere in here leaves something `recover` can finish."""
    folder = Path(folder)
    rate = int(meta.get("rate", 16000))
    fmt = meta.get("sample_format", "s16le")
    frames: dict[str, int] = {}
    wavs: dict[str, Path] = {}
    for name, t in meta.get("tracks", {}).items():
        pcm, wav = folder / t.get("pcm", f"{name}.pcm"), folder / f"{name}.wav"
        if pcm.exists() or not wav.exists():
            frames[name] = pcm_to_wav(pcm, wav, rate, fmt)
        else:  # finalized before, PCM already removed
            with wave.open(str(wav), "rb") as r:
                frames[name] = r.getnframes()
        t["wav"] = wav.name
        t["frames"] = frames[name]
        wavs[name] = wav
    mix = folder / "mix.wav"
    mix_wavs(list(wavs.values()), mix, rate)
    duration = max(frames.values(), default=0) / rate
    for p in meta.get("paused", []):  # spans still open when the recording ended
        p["at"] = duration if p.get("at") is None else p["at"]
    meta.update(state=state, duration=round(duration, 3), mix=mix.name, ended=meta.get("ended") or utc_now())
    write_sidecar(folder, meta)
    if not keep_pcm:
        for name, t in meta.get("tracks", {}).items():
            (folder / t.get("pcm", f"{name}.pcm")).unlink(missing_ok=True)
    counters = meta.get("counters", {})
    return RecordingResult(folder, duration, wavs, mix, int(counters.get("overflows", 0)), meta.get("error"),
                           state == "recovered", int(counters.get("dropped_frames", 0)),
                           list(meta.get("notices", [])))


def find_unfinished(root: Path, depth: int = 3) -> list[Path]:
    """Recording folders under `root` (itself included, `depth` levels down) whose sidecar is not
    finished and that no live process is recording into: those left by a crash."""
    found: list[Path] = []

    def walk(d: Path, level: int) -> None:
        side = d / SIDECAR
        if side.is_file():
            try:
                state = json.loads(side.read_text(encoding="utf-8")).get("state")
            except (OSError, ValueError):
                state = None  # unreadable: worth recovering
            if state not in DONE_STATES and not is_live(d):
                found.append(d)
            return
        if level < depth:
            try:
                subdirs = sorted(p for p in d.iterdir() if p.is_dir())
            except OSError:
                return
            for p in subdirs:
                walk(p, level + 1)

    walk(Path(root), 0)
    return found


def recover(folder: Path, *, keep_pcm: bool = False) -> RecordingResult:
    """Finalize a recording a crash left behind: WAVs from whatever PCM is on disk (a partial
    last sample truncated), the mix, and the sidecar marked `recovered`."""
    folder = Path(folder)
    lock = FolderLock(folder)
    if not lock.acquire():
        raise RecordingError(f"{folder} is still being recorded by a running program")
    try:
        try:
            meta = read_sidecar(folder)
        except (OSError, ValueError):  # no sidecar or a damaged one: rebuild it from the PCM files
            meta = {"format": FORMAT, "version": 1, "rate": 16000, "channels": 1, "sample_format": "s16le",
                    "tracks": {p.stem: {"pcm": p.name} for p in sorted(folder.glob("*.pcm"))}}
        fmt = meta.get("sample_format", "s16le")
        ended = None
        for name, t in meta.get("tracks", {}).items():
            pcm = folder / t.get("pcm", f"{name}.pcm")
            if pcm.exists():
                size = pcm.stat().st_size
                os.truncate(pcm, size - size % _WIDTH[fmt])
                mtime = datetime.fromtimestamp(pcm.stat().st_mtime, UTC)
                ended = max(ended or mtime, mtime)
        meta["ended"] = ended.isoformat(timespec="milliseconds") if ended else None
        meta.setdefault("notices", []).append("recovered after the recording program stopped unexpectedly")
        return finalize(folder, meta, state="recovered", keep_pcm=keep_pcm)
    finally:
        lock.release()
