"""Test signals and how well a recording matches one."""

from __future__ import annotations

import numpy as np


def tone(seconds: float, freq: float = 220.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def aligned_corr(rec: np.ndarray, src: np.ndarray) -> tuple[float, int]:
    """Pearson correlation of `src` with the part of `rec` it best lines up with (by FFT
    cross-correlation, then to 1/8 sample: PulseAudio's resampling chain delays by a fraction of a
    sample, and half a sample alone costs speech ~0.025 of correlation), and that lag in samples."""
    n = 1 << (len(rec) + len(src)).bit_length()
    xc = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(src, n)), n)
    lag = int(np.argmax(xc[:len(rec)]))
    seg = rec[lag:lag + len(src)]
    ref = src[:len(seg)]
    spec, freqs = np.fft.rfft(ref), np.fft.rfftfreq(len(ref))
    best = max(np.corrcoef(seg, np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * shift), len(ref)))[0, 1]
               for shift in np.linspace(-0.5, 0.5, 9))
    return float(best), lag
