"""Is this microphone speech the local person, or the loudspeakers heard again? (numpy only)

Without a headset the microphone also picks up what the computer plays: the remote voices of
the system-audio track come back on the mic track, quieter, later (the audio path's latency plus
the sound's flight), coloured by the loudspeaker and the room, with reverberation. ``check``
takes one mic utterance and the system track around it and fits that echo path:

1. The bulk delay: GCC-PHAT (cross-spectrum with its magnitude flattened to the power
   ``PHAT``) between the mic and the system track over lags ``MIN_LAG``..``MAX_LAG`` (the
   system track leads; a small negative lag allows for the tracks' alignment error).
2. The path after it: the system track, shifted by that delay, in a short-time Fourier
   transform (32 ms frames, 16 ms hop, sqrt-Hann: perfect reconstruction); per frequency bin a
   ridge least-squares fit of ``TAPS`` taps over the current and earlier frames (about 80 ms of
   path: early reflections and the loudspeaker's response; late reverberation stays in the
   residual). Attenuation, delay and colouring are absorbed by the fit.
3. The residual (mic minus the fitted echo), frame by frame: a frame holds local speech when it
   is loud (within ``LOUD_DB`` of the utterance's loud frames) and the echo explains less than
   ``1 - LOCAL_RATIO`` of it. ``local_seconds`` of such frames below ``MIN_LOCAL`` means the
   utterance is echo only.

The residual is also returned as audio (``residual``): kept mic speech goes to the model with
the echo taken out (the fit removes ~10-25 dB of it), so the remote words a person talked over
are not transcribed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 16_000
FRAME, HOP = 512, 256        # 32 ms frames, 16 ms hop
MIN_LAG, MAX_LAG = -1.0, 1.0  # seconds the echo may lag the system track (beyond ~0.3 s and below 0: skew)
TAPS = 16                     # STFT frames of echo path per bin after the bulk delay
PHAT = 0.8                   # GCC weighting: 1 = full phase transform
REFITS = 1                   # refits with frames weighted by how much echo explains them
RIDGE = 1e-3                 # regularisation, relative to the reference's power per bin
LOUD_DB = 25.0               # a speech frame is within this of the utterance's loud frames (95th pct)
LOCAL_RATIO = 0.1            # residual / mic energy above this: the frame is not (only) echo
MIN_LOCAL = 0.3              # seconds of local speech that make an utterance the local person's
NOISE_MARGIN = 4.0           # ... and its residual 6 dB over the utterance's quietest frames (5th pct)
RUN = 7                      # frames (~110 ms): local speech comes in runs; stray frames are noise
SILENT_RMS = 1e-4            # a system track quieter than this around the utterance cannot echo

_WIN = np.sqrt(np.hanning(FRAME + 1)[:FRAME]).astype(np.float64)  # periodic sqrt-Hann


@dataclass
class EchoCheck:
    echo: bool               # echo only: drop this mic utterance
    local_seconds: float     # seconds of frames that hold speech the echo does not explain
    explained: float         # fraction of the utterance's energy the fitted echo explains (0..1)
    delay: float             # seconds the echo lags the system track (the bulk delay found)
    residual: np.ndarray     # the mic utterance with the fitted echo removed (float32)
    local_from: float = 0.0  # where local speech starts and ends in the utterance (seconds from its start)
    local_to: float = 0.0


def _stft(x: np.ndarray) -> np.ndarray:
    n = max(1, int(np.ceil((len(x) - FRAME) / HOP)) + 1) if len(x) > FRAME else 1
    pad = np.zeros((n - 1) * HOP + FRAME)
    pad[:len(x)] = x[:len(pad)]
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    return np.fft.rfft(pad[idx] * _WIN, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    frames = np.fft.irfft(spec, FRAME, axis=1) * _WIN
    out = np.zeros((len(spec) - 1) * HOP + FRAME)
    for t, f in enumerate(frames):
        out[t * HOP:t * HOP + FRAME] += f
    return out[:length]


def _fit(Af: np.ndarray, M: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The echo estimate (T, F): per bin, ridge least squares of M on the taps, frames weighted."""
    Aw = Af * w[None, :, None]
    G = np.einsum("ftk,ftl->fkl", np.conj(Aw), Af)
    power = np.real(np.trace(G, axis1=1, axis2=2)) / Af.shape[2]
    G += (RIDGE * power + 1e-10)[:, None, None] * np.eye(Af.shape[2])
    b = np.einsum("ftk,tf->fk", np.conj(Aw), M)
    h = np.linalg.solve(G, b[..., None])[..., 0]  # (F, K)
    return np.einsum("ftk,fk->tf", Af, h)


def _subtract(M: np.ndarray, E: np.ndarray) -> np.ndarray:
    """The mic with the echo estimate taken out of each bin's magnitude (its phase kept): never
    more than the mic, so a fit that overshoots (a quiet frame after loud ones) finds nothing."""
    mag = np.abs(M)
    return M * np.maximum(0.0, 1.0 - np.abs(E) / np.maximum(mag, 1e-12))


def bulk_delay(mic: np.ndarray, ref: np.ndarray, before: int, rate: int = RATE) -> int:
    """Samples the echo in ``mic`` lags ``ref``, where ``ref[before + i]`` is the system track at
    the time of ``mic[i]``: the GCC-PHAT peak over lags ``MIN_LAG``..``MAX_LAG``."""
    n = 1 << int(len(mic) + len(ref)).bit_length()
    cross = np.fft.rfft(mic, n) * np.conj(np.fft.rfft(ref, n))
    cross /= np.abs(cross) ** PHAT + 1e-12
    cc = np.fft.irfft(cross, n)  # cc[k] = sum_i mic[i + k] ref[i]  (k mod n)
    lags = np.arange(int(MIN_LAG * rate), int(MAX_LAG * rate) + 1)
    # mic[i] = ref[i + before - d]  ->  peak at k = d - before
    k = (lags - before) % n
    return int(lags[int(np.argmax(cc[k]))])


def check(mic: np.ndarray, ref: np.ndarray, before: int, rate: int = RATE) -> EchoCheck:
    """Fit the echo of ``ref`` (the system track from ``before`` samples before ``mic`` starts
    until at least ``-MIN_LAG`` s after it ends; shorter is padded with silence) in ``mic``
    (one utterance of the mic track) and say whether anything but echo is left."""
    mic = np.asarray(mic, np.float64).ravel()
    ref = np.asarray(ref, np.float64).ravel()
    empty = EchoCheck(False, len(mic) / rate, 0.0, 0.0, mic.astype(np.float32), 0.0, len(mic) / rate)
    if rate != RATE or len(mic) < FRAME:
        return empty
    if not len(ref) or float(np.sqrt(np.mean(ref ** 2))) < SILENT_RMS:
        return empty
    d = bulk_delay(mic, ref, before, rate)
    a = before - d  # ref[a + i] lines up with mic[i]
    aligned = np.zeros(len(mic) + (TAPS - 1) * HOP)  # with (TAPS-1) hops of history before mic[0]
    lo = a - (TAPS - 1) * HOP
    src_lo, src_hi = max(0, lo), min(len(ref), lo + len(aligned))
    if src_hi > src_lo:
        aligned[src_lo - lo:src_hi - lo] = ref[src_lo:src_hi]
    M = _stft(mic)
    Y = _stft(aligned)
    T = len(M)
    # taps: Y frames t, t-1, ..., t-TAPS+1 relative to the mic frame (aligned starts TAPS-1 hops early)
    A = np.stack([Y[TAPS - 1 - k:TAPS - 1 - k + T] for k in range(TAPS)], axis=2)  # (T, F, K)
    if A.shape[0] < T:
        return empty
    Af = np.transpose(A, (1, 0, 2))  # (F, T, K)
    m = (np.abs(M) ** 2).sum(1)
    w = np.ones(T)
    for _ in range(REFITS + 1):  # refit with double talk down-weighted: the echo-only frames lead
        E = _fit(Af, M, w)
        R = _subtract(M, E)
        r = (np.abs(R) ** 2).sum(1)
        w = 1.0 / (1.0 + (r / (LOCAL_RATIO * m + 1e-20)) ** 2)
    floor = np.percentile(m, 5)  # the mic's noise (an utterance is padded and has pauses)
    loud = (m >= np.percentile(m, 95) * 10 ** (-LOUD_DB / 10)) & (r >= NOISE_MARGIN * floor)
    local = loud & (r >= LOCAL_RATIO * m)
    local = np.convolve(local.astype(float), np.ones(RUN) / RUN, "same") > 0.5  # runs, not stray frames
    local_s = float(local.sum() * HOP / rate)
    explained = float(max(0.0, 1.0 - r.sum() / max(m.sum(), 1e-20)))
    residual = _istft(R, len(mic)).astype(np.float32)
    where = np.flatnonzero(local)
    span = (where[0] * HOP / rate, min(len(mic), where[-1] * HOP + FRAME) / rate) if len(where) else (0.0, 0.0)
    return EchoCheck(local_s < MIN_LOCAL, local_s, explained, d / rate, residual, *span)

