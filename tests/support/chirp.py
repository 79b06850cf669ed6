"""A known marker for "when did the recording really start": a 0.5 s chirp, played into the virtual
microphone the moment the app says it is recording, then found in what it stored."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16_000
SECONDS = 0.5


def chirp(seconds: float = SECONDS, f0: float = 400.0, f1: float = 3000.0) -> np.ndarray:
    """A linear sweep f0 -> f1 Hz at half scale, with 5 ms fades (no clicks)."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t * t))
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.005)
    return (x * fade).astype(np.float32)


def write_chirp(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((chirp() * 32767).astype("<i2").tobytes())
    return path


def find_chirp(rec: np.ndarray) -> tuple[float, float]:
    """(seconds into `rec` where the whole chirp best lines up, Pearson correlation there, to 1/8
    sample: PulseAudio's resampling delays by a fraction of one, which costs a 3 kHz sweep up to
    0.1 of correlation). A chirp whose start was not recorded matches nowhere well."""
    src = chirp()
    n = 1 << (len(rec) + len(src)).bit_length()
    xc = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(src, n)), n)
    lag = int(np.argmax(xc[:max(1, len(rec) - len(src) + 1)]))
    seg = rec[lag:lag + len(src)]
    if len(seg) < len(src) or not seg.any():
        return lag / RATE, 0.0
    spec, freqs = np.fft.rfft(src), np.fft.rfftfreq(len(src))
    best = max(np.corrcoef(seg, np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * shift), len(src)))[0, 1]
               for shift in np.linspace(-0.5, 0.5, 9))
    return lag / RATE, float(best)
