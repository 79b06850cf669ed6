"""Decode any audio or video file PyAV can open to 16 kHz mono float32.

Decoding streams: ``iter_audio`` yields blocks as they are resampled, so a
three-hour file never sits whole in memory unless the caller asks for it with
``decode_audio``. Every failure is a ``MediaError`` with one line a person can
act on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.errors import MinutelyError

SAMPLE_RATE = 16_000


class MediaError(MinutelyError):
    """A media file that cannot be used; the message is one line for the user."""


class NoSpeech(MediaError):
    """The file decodes, but holds no speech: too little audio for an utterance, or the VAD
    found none in it. Nothing is stored for such a file."""

    def __init__(self, name: str, seconds: float):
        self.seconds = seconds
        super().__init__(f"no speech in {name} ({format_seconds(seconds)} s of audio)")


def format_seconds(seconds: float) -> str:
    """A length for a message: 0.06, 12.50, 3600; a sliver of a file is not shown as 0.00."""
    if seconds >= 60:
        return f"{seconds:.0f}"
    if seconds == 0 or seconds >= 0.01:
        return f"{seconds:.2f}"
    return f"{seconds:.1g}"


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a file; else MediaError saying what it is instead."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise MediaError(f"{path} is a directory")
    if not p.exists():
        raise MediaError(f"file not found: {path}")
    if not p.is_file():
        raise MediaError(f"{path} is not a regular file")
    return p


def open_container(path: str | os.PathLike):
    """The file opened with PyAV; MediaError (one line) when it is missing, empty or unreadable."""
    import av

    p = check_file(path)
    if p.stat().st_size == 0:
        raise MediaError(f"file is empty: {p.name}")
    try:
        return av.open(str(p), mode="r")
    except av.error.InvalidDataError:
        raise MediaError(f"not an audio or video file (or damaged beyond reading): {p.name}") from None
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(f"cannot open {p.name}: {e}") from None


def open_audio(path: str | os.PathLike):
    """(container, its first audio stream); MediaError (one line) when it has none."""
    container = open_container(path)
    if not container.streams.audio:
        container.close()
        raise MediaError(f"no audio track in {Path(path).name}")
    return container, container.streams.audio[0]


def iter_audio(path: str | os.PathLike, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks of about ``block_seconds`` each."""
    import av

    name = Path(path).name
    container, stream = open_audio(path)
    try:
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        block = int(block_seconds * SAMPLE_RATE)
        pending: list[np.ndarray] = []
        n_pending = 0
        got_any = False
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    pending.append(a)
                    n_pending += len(a)
                    got_any = True
                    while n_pending >= block:
                        buf = np.concatenate(pending)
                        yield buf[:block]
                        pending, n_pending = [buf[block:]], len(buf) - block
            for out in resampler.resample(None):
                a = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                pending.append(a)
                n_pending += len(a)
                got_any = True
        except av.error.FFmpegError as e:
            if not got_any:
                raise MediaError(f"cannot decode the audio of {name}: {e}") from None
            # A truncated file: keep what decoded, which is what a player would play.
        if not got_any:
            raise MediaError(f"no decodable audio in {name}")
        if n_pending:
            yield np.concatenate(pending)
    finally:
        container.close()


def decode_span(path: str | os.PathLike, start: float, end: float) -> np.ndarray:
    """Seconds ``start``..``end`` of the audio track as 16 kHz mono float32: it seeks, so a
    minute three hours into a file costs about what the minute does."""
    import av

    name = Path(path).name
    container, stream = open_audio(path)
    try:
        if start > 0:
            container.seek(int(start * 1_000_000), any_frame=False, backward=True)  # microseconds
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        need = max(0, int(round((end - start) * SAMPLE_RATE)))
        parts: list[np.ndarray] = []
        first: float | None = None  # where the decoded audio begins (a seek lands at or before start)
        have = 0
        try:
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    parts.append(a)
                    have += len(a)
                if have >= (start - first) * SAMPLE_RATE + need:
                    break
        except av.error.FFmpegError as e:
            if not parts:
                raise MediaError(f"cannot decode the audio of {name}: {e}") from None
        x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        skip = max(0, int(round((start - (first or 0.0)) * SAMPLE_RATE)))
        return x[skip:skip + need]
    finally:
        container.close()


def decode_audio(path: str | os.PathLike) -> np.ndarray:
    """The whole audio track as one 16 kHz mono float32 array."""
    blocks = list(iter_audio(path))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def write_wav(path: str | os.PathLike, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples as 16-bit PCM WAV (the stdlib wave module)."""
    import wave

    p = Path(path)
    pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return p


def read_span(wav: str | os.PathLike, start: float, end: float) -> np.ndarray:
    """Seconds ``start``..``end`` of a 16-bit mono WAV (a recording's mix), as float32; reads
    only that part."""
    import wave

    with wave.open(str(wav), "rb") as w:
        rate, n = w.getframerate(), w.getnframes()
        a, b = min(n, int(start * rate)), min(n, int(end * rate))
        w.setpos(a)
        return np.frombuffer(w.readframes(b - a), "<i2").astype(np.float32) / 32768.0
