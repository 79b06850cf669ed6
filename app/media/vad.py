"""Cut a 16 kHz mono stream into utterances for the transcription model.

Why: the model takes at most 30 s of audio at a time, and on meetings most of
its errors come from segmentation, above all one utterance holding two
speakers. So an utterance ends at any clear pause once it is long enough,
fragments join their nearer neighbour, nothing exceeds 30 s, and the times are
exact enough to cut the audio again later.

The speech score: ``default_detector()``, Silero VAD (app/media/silero.py, a pretrained model on
onnxruntime) and earshot together (``Combined``: the larger of Silero's probability and earshot's
score mapped so that its 0.7/0.6 fall on Silero's 0.5/0.35, i.e. speech where either detector says
so at its own thresholds), or earshot alone when Silero cannot load. On the real AMI clips of
bench/diarize_real.py the utterances cover 0.85 of the reference speech (earshot 0.79, Silero 0.74,
which found nothing in one far-field clip) and 0.64 of it 20 dB quieter (earshot 0.38); on the
synthetic meetings the stored segments keep DER 0 with the count given. The figures below
were measured with earshot alone, the thresholds when a detector is given are its own.

How: earshot (a small recurrent VAD, one score per 16 ms frame) -> onset/offset
hysteresis -> speech runs -> chunks, ended by a gap of ``split_pause`` (of
``min_gap`` once ``target`` long). A chunk shorter than ``min_len`` merges
with the neighbour across the shorter gap, if under ``max_pause``. Past
``max_len`` a chunk is cut at its quietest frame (smoothed score + energy)
between 10 and 30 s. Less than ``min_speech`` of speech: dropped. Pads never
overlap a neighbour (a short gap is shared) nor leave the stream.

Values measured on synthetic meetings (espeak-ng voices, 2-4 speakers, noise
RMS 0/0.01/0.02, tuned on seeds 0-2, checked on 3-5 with gaps of 0.3-0.4 s):
- earshot starts speech 25 ms late (95th pct 95 ms) and ends it 70 ms late
  (95th pct 100 ms; 150/250 ms at noise 0.02), so a 0.3 s pause between
  speakers shows as ~0.2-0.3 s while pauses inside a sentence show as
  <= 0.18 s (95th pct): ``split_pause`` 0.2 s. 0.25 s cut 96%/84% of the tight
  speaker changes at noise 0.01/0.02; 0.15 s cuts more inside sentences.
- onset 0.7 / offset 0.6 keeps those gaps widest: 0.6/0.5 cut 98%/78% of the
  tight changes, 0.7/0.6 cuts 99.5%/98.5% (100% clean).
- merging a fragment forward only (not to the nearer side) joined a turn's
  last words to the next speaker: 98.5% of changes cut at noise, now 99-100%.
- ``pad_start`` 0.2 s covers the late onset: utterances start 0.10-0.20 s
  before the truth and end 0.09-0.19 s after it (clean).
- frame accuracy (bench/vad.py, 9 meetings each): 0.96/0.94/0.94 per frame,
  0.93/0.93/0.92 for the padded utterances; energy baseline 0.98/0.89/0.87.
- ``max_pause`` 0.8 s and ``min_len`` 1 s are choices (every synthetic
  sentence is > 1 s); ``segment`` runs at ~0.001 x real time, earshot ~90%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

RATE = 16_000
FRAME = 256  # earshot's frame: 16 ms
FPS = RATE / FRAME  # 62.5 frames a second


@dataclass
class Utterance:
    start: float  # seconds from the start of the stream
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class FrameDetector(Protocol):
    def predict_f32(self, frame: np.ndarray) -> float: ...
    def reset(self) -> None: ...


class Combined:
    """Silero VAD and earshot together: a frame is speech when either detector, each at its own
    thresholds, says so. earshot's score is mapped piecewise-linearly so that its 0.7/0.6
    land on Silero's 0.5/0.35; the score is the larger of the two."""

    window = 512

    def __init__(self, silero, earshot_detector) -> None:
        self.silero, self.earshot = silero, earshot_detector
        self.onset, self.offset = silero.onset, silero.offset

    def reset(self) -> None:
        self.silero.reset()
        self.earshot.reset()

    def predict_frames(self, fr: np.ndarray) -> np.ndarray:
        pred = self.earshot.predict_f32
        e = np.fromiter((pred(f) for f in fr), np.float32, len(fr))
        lo, hi = 0.6, 0.7  # earshot's offset/onset -> Silero's
        m = np.where(e < lo, e * self.offset / lo,
                     np.where(e < hi, self.offset + (e - lo) * (self.onset - self.offset) / (hi - lo),
                              self.onset + (e - hi) * (1 - self.onset) / (1 - hi)))
        return np.maximum(self.silero.predict_frames(fr), m).astype(np.float32)


def default_detector(kind: str | None = None):
    """Silero VAD (app/media/silero.py) where onnxruntime and its model are installed, else
    earshot (one warning line)."""
    import os

    import earshot

    from app.media import silero

    kind = kind or os.environ.get("MINUTELY_VAD", "combined")
    if kind == "earshot":
        return earshot.Detector()
    det = silero.load()
    if det is None:
        return earshot.Detector()
    return det if kind == "silero" else Combined(det, earshot.Detector())


def warm_up() -> None:
    """Import what reading a file needs (PyAV, the speech detectors' libraries) and run a detector
    on a moment of silence: a C extension's first import holds the interpreter lock for tens of ms
    (onnxruntime's ~35), so this is done once, early, not while the first dropped file is read."""
    import av  # noqa: F401

    frame_scores(default_detector(), np.zeros((64, FRAME), np.float32))


def frame_scores(detector, fr: np.ndarray) -> np.ndarray:
    """The detector's score of each 16-ms frame (rows of ``fr``); a windowed detector (Silero:
    ``window`` = 512 samples) scores them as a batch and needs an even number of them."""
    batch = getattr(detector, "predict_frames", None)
    if batch is not None:
        return np.asarray(batch(fr), np.float32)
    pred = detector.predict_f32
    return np.fromiter((pred(f) for f in fr), np.float32, len(fr))


def frames_per_push(detector) -> int:
    """Frames must be scored in multiples of this (2 for Silero's 32-ms windows)."""
    return max(1, int(getattr(detector, "window", FRAME)) // FRAME)


class EnergyVAD:
    """Baseline for comparison only: smoothed frame energy against a noise floor that
    follows the quietest level (rising at most ``rise`` dB a frame) plus ``margin`` dB.
    Margin 0.5 dB maximised mean frame accuracy on the synthetic meetings (the Segmenter's
    onset 0.7 adds 1.7 dB); a fixed -40 dBFS did well only at the noise level it matched
    (0.84/0.95/0.88 at noise 0/0.01/0.02). Same interface as ``earshot.Detector``."""

    def __init__(self, margin: float = 0.5, floor_min: float = -70.0, rise: float = 0.02,
                 smooth: float = 0.3) -> None:
        self.margin, self.floor_min, self.rise, self.smooth = margin, floor_min, rise, smooth
        self._level = -100.0
        self._floor: float | None = None
        self.reset()

    def predict_f32(self, frame: np.ndarray) -> float:
        db = 10.0 * math.log10(float(np.dot(frame, frame)) / len(frame) + 1e-10)
        self._level += self.smooth * (db - self._level)
        self._floor = min(self._level, self._floor + self.rise) if self._floor is not None else self._level
        x = (self._level - max(self._floor, self.floor_min) - self.margin) / 2.0
        return 1.0 / (1.0 + math.exp(-min(max(x, -50.0), 50.0)))

    def reset(self) -> None:
        self._level = -100.0
        self._floor = None


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    return np.convolve(np.pad(x, width // 2, mode="edge"), np.ones(width) / width, mode="valid")


@dataclass
class _Chunk:
    s: int  # first frame
    e: int  # end of its last speech run (frames)
    gap_before: int  # frames of silence before it (huge when nothing can take it back)
    pad: bool = True  # pad its start (not after a forced cut)
    speech: int = 0  # frames of speech in it
    closed: bool = False  # short and ended: merges back, forward, or stands alone


class Segmenter:
    """Streaming segmenter: ``push`` blocks of any size, get the utterances completed so far;
    ``flush`` at the end. After ``flush`` the segmenter is reset: the next ``push`` starts a
    new stream whose times begin at 0 again. Memory is bounded (about ``max_len`` of frame
    scores), whatever the length of the stream. An utterance comes out once nothing can change
    it: at most ``max_pause`` (or ``min_len`` of the next speech) after it ends."""

    def __init__(self, *, onset: float | None = None, offset: float | None = None, min_speech: float = 0.25,
                 min_gap: float = 0.1, split_pause: float = 0.2, max_pause: float = 0.8,
                 min_len: float = 1.0, target: float = 15.0, max_len: float = 30.0,
                 pad_start: float = 0.2, pad_end: float = 0.1, detector: FrameDetector | None = None,
                 keep_scores: bool = False) -> None:
        if detector is None:
            detector = default_detector()
        self.detector: FrameDetector = detector
        self._pair = frames_per_push(detector)
        # the detector's own thresholds (Silero's published 0.5/0.35), else earshot's 0.7/0.6
        onset = getattr(detector, "onset", 0.7) if onset is None else onset
        offset = getattr(detector, "offset", 0.6) if offset is None else offset
        if not 0 <= offset <= onset <= 1:
            raise ValueError("need 0 <= offset <= onset <= 1")
        if not 0 < min_gap <= split_pause <= max_pause or pad_start + pad_end > max_pause:
            raise ValueError("need 0 < min_gap <= split_pause <= max_pause >= pad_start + pad_end")
        if not 0 < min_len <= target < max_len:
            raise ValueError("need 0 < min_len <= target < max_len")
        self.onset, self.offset = onset, offset
        f = lambda s: max(1, int(round(s * FPS)))  # noqa: E731  seconds -> frames
        self._min_speech, self._min_gap, self._split = f(min_speech), f(min_gap), f(split_pause)
        self._max_pause, self._min_len, self._target, self._max_len = f(max_pause), f(min_len), f(target), f(max_len)
        self._pads = f(pad_start + pad_end)
        self.pad_start, self.pad_end = pad_start, pad_end
        self.keep_scores = keep_scores
        self._reset()

    def _reset(self) -> None:
        self.detector.reset()
        self.frames = 0  # frames scored so far in this stream
        self.samples = 0  # samples pushed so far in this stream
        self._rest = np.zeros(0, np.float32)
        self._in_speech = False
        self._run_start = 0
        self._cur: _Chunk | None = None  # the chunk being built
        self._held: _Chunk | None = None  # ended, but a short next chunk may still merge into it
        self._prev_end = 0.0  # end (seconds) of the last emitted utterance
        self._hist_start = 0  # frame index of _hist_*[0] (kept from the current chunk's start)
        self._hist_score = np.zeros(0, np.float32)
        self._hist_db = np.zeros(0, np.float32)
        self._out: list[Utterance] = []
        self.scores: list[np.ndarray] = []  # per-frame scores and decisions, with keep_scores
        self.speech: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> list[Utterance]:
        """Feed the next samples (16 kHz mono, float in [-1, 1] or int16); returns the utterances
        completed so far (in order, never overlapping)."""
        b = np.asarray(block).reshape(-1)
        x = b.astype(np.float32) / 32768.0 if b.dtype.kind == "i" else np.clip(b.astype(np.float32), -1.0, 1.0)
        self.samples += len(x)
        buf = np.concatenate([self._rest, x]) if len(self._rest) else x
        n = len(buf) // FRAME // self._pair * self._pair
        self._rest = buf[n * FRAME:].copy()
        if n:
            self._frames(buf[:n * FRAME].reshape(n, FRAME))
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: the remaining utterances. Then the segmenter is ready for a new stream."""
        if self._in_speech:
            self._region_end(self.frames)
        self._advance(self.frames + (1 << 40))  # endless silence settles everything
        out, total = self._out, self.samples / RATE
        for u in out:
            u.end = min(u.end, total)
        out = [u for u in out if u.end > u.start]
        self._reset()
        return out

    def _frames(self, fr: np.ndarray) -> None:
        score = frame_scores(self.detector, fr)
        db = (10.0 * np.log10(np.einsum("ij,ij->i", fr, fr) / FRAME + 1e-10)).astype(np.float32)
        state = np.full(len(score), -1, np.int8)  # hysteresis: 1 above onset, 0 below offset, else hold
        state[score >= self.onset] = 1
        state[score < self.offset] = 0
        idx = np.maximum.accumulate(np.where(state >= 0, np.arange(len(state)), -1))
        dec = np.where(idx >= 0, state[np.maximum(idx, 0)] == 1, self._in_speech)
        if self.keep_scores:
            self.scores.append(score)
            self.speech.append(dec)
        f0 = self.frames
        self._hist_score = np.concatenate([self._hist_score, score])
        self._hist_db = np.concatenate([self._hist_db, db])
        edges = np.flatnonzero(np.diff(np.concatenate([[self._in_speech], dec]).astype(np.int8))) + f0
        for e in edges.tolist():  # starts and ends alternate; a few a second
            if self._in_speech:
                self._region_end(e)
            else:
                self._advance(e)
                self._region_start(e)
        self.frames = f0 + len(fr)
        if self._in_speech:
            self._grow(self.frames)
        else:
            self._advance(self.frames)
        keep = self._cur.s if self._cur else (self._run_start if self._in_speech else self.frames)
        if keep > self._hist_start:
            cut = keep - self._hist_start
            self._hist_score, self._hist_db, self._hist_start = self._hist_score[cut:], self._hist_db[cut:], keep

    def _region_start(self, s: int) -> None:
        self._in_speech, self._run_start = True, s
        if self._cur is not None:  # open: the gap was too short to end it; closed: merge forward
            self._cur.closed = False
        else:
            self._cur = _Chunk(s, s, s - self._held.e if self._held else 1 << 40)

    def _region_end(self, e: int) -> None:
        self._grow(e)
        cur = self._cur
        assert cur is not None
        self._in_speech = False
        cur.speech += e - max(self._run_start, cur.s)
        cur.e = e

    def _grow(self, now: int) -> None:
        """Speech goes on to ``now``: cut at the quietest frame while too long; once the chunk
        is ``min_len`` long, nothing can merge back into the held one."""
        cur = self._cur
        assert cur is not None
        while now - cur.s > self._max_len:
            third = self._max_len // 3
            lo, hi = cur.s + third - self._hist_start, cur.s + self._max_len - self._hist_start
            w = slice(lo - 4, hi)  # frames before s + max_len only: the same cut for any block size
            key = _smooth(self._hist_score[w], 5) + np.maximum(_smooth(self._hist_db[w], 9), -80.0) / 20.0
            key = key[4:] + 0.05 * np.abs(np.linspace(-1.0, 1.0, len(key) - 4))  # ties: nearer the middle
            q = cur.s + third + int(np.argmin(key))
            self._emit_held(cur.s)
            part = _Chunk(cur.s, q, 0, cur.pad, cur.speech + max(0, q - max(self._run_start, cur.s)))
            self._emit(part, q)
            cur.s, cur.e, cur.gap_before, cur.pad, cur.speech = q, max(q, cur.e), 0, False, 0
        if now - cur.s >= self._min_len:
            self._emit_held(cur.s)

    def _advance(self, now: int) -> None:
        """Silence up to frame ``now``: end chunks whose pause is long enough."""
        cur = self._cur
        if cur is not None and not cur.closed:
            length = cur.e - cur.s
            if now - cur.e >= (self._split if length < self._target else self._min_gap):
                if length >= self._min_len:
                    self._emit_held(cur.s)
                    self._held, self._cur = cur, None
                else:
                    cur.closed = True
        cur = self._cur
        if cur is not None and cur.closed and now - cur.e >= min(cur.gap_before, self._max_pause):
            held = self._held  # short chunk nearer to the one before than to the next: merge back
            if held is not None and cur.gap_before < self._max_pause and cur.e - held.s <= self._target:
                held.e, held.speech = cur.e, held.speech + cur.speech
            else:
                self._emit_held(cur.s)
                self._held = cur
            self._cur = None
        if self._cur is None and self._held is not None and now - self._held.e >= self._max_pause:
            self._emit_held(None)

    def _emit_held(self, next_start: int | None) -> None:
        if self._held is not None:
            self._emit(self._held, next_start)
            self._held = None

    def _emit(self, c: _Chunk, next_start: int | None) -> None:
        """Pad and emit; a gap too short for both pads is shared in proportion to them."""
        if c.speech < self._min_speech:
            return
        start = max(self._prev_end, c.s / FPS - self.pad_start) if c.pad else c.s / FPS
        if next_start is None or next_start - c.e >= self._pads:
            end = c.e / FPS + self.pad_end
        else:
            end = (c.e + (next_start - c.e) * self.pad_end / (self.pad_start + self.pad_end)) / FPS
        self._out.append(Utterance(round(start, 3), round(end, 3)))
        self._prev_end = end


def _blocks(samples_or_blocks: np.ndarray | Iterable[np.ndarray], size: int = 10 * RATE) -> Iterable[np.ndarray]:
    if isinstance(samples_or_blocks, np.ndarray):
        a = samples_or_blocks.reshape(-1)
        return (a[i:i + size] for i in range(0, len(a), size))
    return samples_or_blocks


def segment(samples_or_blocks: np.ndarray | Iterable[np.ndarray], **options) -> list[Utterance]:
    """All utterances of an array, or of an iterator of blocks (streamed)."""
    seg = Segmenter(**options)
    out: list[Utterance] = []
    for b in _blocks(samples_or_blocks):
        out.extend(seg.push(b))
    return out + seg.flush()


def segment_file(path: str | Path, **options) -> list[Utterance]:
    """Utterances of any audio or video file, decoded and segmented block by block."""
    from app.media.audio import iter_audio

    return segment(iter_audio(path, block_seconds=10.0), **options)


def frame_speech(samples: np.ndarray, detector: FrameDetector | None = None, **options) -> np.ndarray:
    """The per-16 ms-frame speech decision (after hysteresis), for measurement."""
    seg = Segmenter(detector=detector, keep_scores=True, **options)
    n = len(samples) // FRAME
    for b in _blocks(np.concatenate([samples, np.zeros(FRAME, np.float32)])):  # a last odd frame too
        seg.push(b)
    return (np.concatenate(seg.speech) if seg.speech else np.zeros(0, bool))[:n]
