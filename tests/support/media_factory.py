"""Make test media with PyAV alone: videos with a picture and a sound track; and files a user might
give that hold no speech (a truncated WAV header, a WAV whose header lies, silence, a folder)."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_video(path: str | Path, seconds: float = 2.0, *, fps: int = 10, size=(320, 240),
               audio: np.ndarray | None = None, rate: int = 16000) -> Path:
    """An H.264 + AAC MP4 with moving colour bars and the given mono audio
    (a 330 Hz tone if None); ``audio=False``-like empty array gives no audio track."""
    import av

    path = Path(path)
    if audio is None:
        t = np.arange(int(seconds * rate)) / rate
        audio = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
        a = None
        if len(audio):
            a = out.add_stream("aac", rate=rate)
            a.layout = "mono"
        n_frames = int(seconds * fps)
        for i in range(n_frames):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:, :, 0] = (np.arange(size[0]) * 255 // size[0])[None, :]
            img[:, :, 1] = (i * 20) % 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for pkt in v.encode(frame):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        if a is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            step = 1024
            pts = 0
            for i in range(0, len(pcm), step):
                chunk = pcm[i:i + step]
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                fr.sample_rate = rate
                fr.pts = pts
                fr.time_base = Fraction(1, rate)
                pts += len(chunk)
                for pkt in a.encode(fr):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
    return path


def wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    """A 44-byte PCM WAV header (mono, 16-bit) that announces ``data_bytes`` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def truncated_wav(path: Path) -> Path:
    """60 bytes: the header of a one-second file and the first 8 samples (0.0005 s)."""
    path.write_bytes(wav_header(32_000) + bytes(16))
    assert path.stat().st_size == 60
    return path


def lying_wav(path: Path) -> Path:
    """2 KB: a header that claims 10 MB of samples (over 5 minutes), then 1,002 samples of sound."""
    pcm = (np.random.default_rng(0).normal(0, 0.1, 2000) * 32767).astype("<i2").tobytes()
    path.write_bytes((wav_header(10_000_000) + pcm)[:2048])
    return path


def no_speech_file(kind: str, f: Path) -> Path:
    """A file a user might give that holds no speech: truncated, lying, silent, or a folder."""
    if kind == "truncated":
        truncated_wav(f)
    elif kind == "lying":
        lying_wav(f)
    elif kind == "silence":
        from app.media.audio import write_wav

        write_wav(f, np.zeros(3 * 16000, np.float32))
    else:
        f.mkdir()
    return f
