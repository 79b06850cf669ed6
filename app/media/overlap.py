"""Where two people speak at once, and who the second voice is (issue 15).

The segmentation model (``segmentation.py``: pyannote's segmentation-3.0, trained on real
meetings) gives, for each 10 s window, which of up to three local speakers talk, two at once
included. ``OverlapDetector`` runs it over a recording as the audio streams past (windows every
``STEP`` seconds, the last flush with the end; shorter audio padded with silence), averages the
windows' per-frame speaker counts (rounded, as pyannote's own pipeline does) and returns the
stretches where the count is two or more, and (``changes``) where the voice heard alone changes
to another (local speakers followed from window to window), pause or not: transcription cuts
its utterances there (``split_at``), so a hand-over without a pause gives each voice its own
segment. ``second_voices`` gives the part of each labelled segment a stretch touches a second
speaker: the nearest other speaker within ``NEAR`` seconds -- two voices at once are mostly a
turn's hand-over or an interjection. Transcription stores them as overlap marks beside the
segments (``Library.overlaps``); the words stay with the segment.

Measured (bench/segcheck.py: the port equals pyannote.audio on the same checkpoint, same
decision on every frame; bench/diarize_real.py --pipeline for DER): on the eight real AMI clips
the model finds overlap with precision 0.96 and recall 0.40-0.54; what it cannot hear (turns
faint in the speech band) it cannot mark. Marks are never made where nobody was labelled.

Tried and not kept (branch wt-overlap, figures there): diarizing with the model's local
speakers alone (pyannote's recipe with today's MFCC embeddings), which did not beat clustering
utterances on the real clips.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

from app.media import segmentation

RATE = segmentation.RATE
STEP = 5.0          # seconds between windows: each frame seen by two windows
BATCH = 8           # windows per call
NEAR = 5.0          # seconds to look for the second voice of an overlap
MIN_PIECE = 0.6     # seconds: the shortest piece an utterance is cut into at a speaker change
T = TypeVar("T")


def _starts(n: int) -> list[int]:
    """Window starts (samples) over ``n`` samples: every STEP, the last flush with the end."""
    size = int(segmentation.CHUNK * RATE)
    if n <= size:
        return [0]
    step = int(STEP * RATE)
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def _activity(x: np.ndarray, w: dict) -> tuple[list[int], np.ndarray]:
    """All windows of ``x`` at once: (starts, (windows, frames, 3) activity)."""
    size = int(segmentation.CHUNK * RATE)
    starts = _starts(len(x))
    padded = np.pad(x, (0, max(0, size - len(x))))
    act = np.concatenate([
        segmentation.local_activity(w, np.stack([padded[s:s + size] for s in starts[i:i + BATCH]]))
        for i in range(0, len(starts), BATCH)])
    return starts, act


def _frames(n_samples: int) -> int:
    return int(np.ceil(max(n_samples, segmentation.CHUNK * RATE) / RATE / segmentation.FRAME_STEP)) + 1


def frame_count(starts: list[int], act: np.ndarray, n_samples: int) -> np.ndarray:
    """How many speak in each frame of the whole recording (frame g centred at
    ``g * FRAME_STEP + FRAME_SIZE / 2``): the windows' counts averaged, rounded."""
    n = _frames(n_samples)
    count, views = np.zeros(n), np.zeros(n)
    _add(count, views, starts, act)
    return np.round(count / np.maximum(views, 1)).astype(int)


def _add(count: np.ndarray, views: np.ndarray, starts: list[int], act: np.ndarray) -> None:
    fstep, nf = segmentation.FRAME_STEP, act.shape[1]
    for c, s in enumerate(starts):
        gi = int(round(s / RATE / fstep)) + np.arange(nf)
        ok = gi < len(count)
        count[gi[ok]] += act[c][ok].sum(1)
        views[gi[ok]] += 1


def stretches(count: np.ndarray, n_samples: int) -> list[tuple[float, float]]:
    """(start, end) seconds of the frames where two or more speak."""
    fstep = segmentation.FRAME_STEP
    two = np.r_[False, count >= 2, False].astype(int)
    offset = segmentation.FRAME_SIZE / 2 - fstep / 2
    end_t = n_samples / RATE
    return [(round(max(a * fstep + offset, 0.0), 3), round(min(b * fstep + offset, end_t), 3))
            for a, b in zip(np.flatnonzero(np.diff(two) == 1).tolist(),
                            np.flatnonzero(np.diff(two) == -1).tolist(), strict=True)]


class OverlapDetector:
    """Overlap stretches of 16 kHz mono audio pushed block by block; it keeps one window of
    audio and the frame counts (~60 numbers a second), so hours stream in little memory.
    ``w``: the model (``segmentation.load()``; the caller checks it is there)."""

    def __init__(self, w: dict):
        self.w = w
        self.size = int(segmentation.CHUNK * RATE)
        self.step = int(STEP * RATE)
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0                      # sample index of buf[0]
        self.n = 0                              # samples pushed
        self.next = 0                           # start of the next window
        self.ran: list[int] = []                # starts of the windows run
        self.acts: list[np.ndarray] = []        # their activity (frames, 3) as uint8: 1.8 kB each
        self.pending: list[tuple[int, np.ndarray]] = []
        self.count = np.zeros(_frames(0))
        self.views = np.zeros(_frames(0))

    def push(self, block: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)])
        self.n += len(block)
        while self.next + self.size <= self.n:
            a = self.next - self.buf_start
            self.pending.append((self.next, self.buf[a:a + self.size].copy()))
            self.next += self.step
            if len(self.pending) >= BATCH:
                self._run()
        # keep what the next window, or a last one flush with the end, still needs
        drop = max(0, min(self.next, self.n - self.size) - self.buf_start)
        self.buf, self.buf_start = self.buf[drop:], self.buf_start + drop

    def _run(self) -> None:
        if not self.pending:
            return
        starts = [s for s, _ in self.pending]
        act = segmentation.local_activity(self.w, np.stack([c for _, c in self.pending]))
        need = _frames(starts[-1] + self.size)
        if need > len(self.count):
            grow = max(need, 2 * len(self.count)) - len(self.count)
            self.count, self.views = np.pad(self.count, (0, grow)), np.pad(self.views, (0, grow))
        _add(self.count, self.views, starts, act)
        self.ran += starts
        self.acts += list(act.astype(np.uint8))
        self.pending.clear()

    def finish(self) -> list[tuple[float, float]]:
        """The stretches of everything pushed (the last window flush with its end); then
        ``changes()`` gives the speaker changes."""
        if 0 < self.n < self.size:              # short audio: one window, padded with silence
            self.pending.append((0, np.pad(self.buf, (0, self.size - len(self.buf)))))
        elif self.n > self.size and max(self.ran + [s for s, _ in self.pending]) + self.size < self.n:
            a = self.n - self.size - self.buf_start
            self.pending.append((self.n - self.size, self.buf[a:a + self.size].copy()))
        self._run()
        n = _frames(self.n)
        count = np.round(self.count[:n] / np.maximum(self.views[:n], 1)).astype(int)
        return stretches(count, self.n)

    def changes(self) -> list[float]:
        """Seconds where the voice heard alone changes to another one (after ``finish``)."""
        if not self.acts:
            return []
        return speaker_changes(self.ran, np.stack(self.acts), self.n)   # windows run in time order


def detect(blocks: Iterable[np.ndarray]) -> list[tuple[float, float]] | None:
    """Overlap stretches of a stream of 16 kHz blocks; None when the model is not installed."""
    w = segmentation.load()
    if w is None:
        return None
    d = OverlapDetector(w)
    for b in blocks:
        d.push(b)
    return d.finish()


def _tracks(starts: list[int], act: np.ndarray) -> np.ndarray:
    """A track id per (window, local speaker): a local speaker continues the previous window's
    local speaker it co-speaks with most over their shared frames (the model kept them one
    person there), else it starts a new track."""
    fstep = segmentation.FRAME_STEP
    track = np.full((len(starts), segmentation.LOCAL), -1)
    track[0] = np.arange(segmentation.LOCAL)
    nxt = segmentation.LOCAL
    for c in range(1, len(starts)):
        shift = int(round((starts[c] - starts[c - 1]) / RATE / fstep))
        a = act[c - 1][shift:].astype(np.float32)
        b = act[c][:len(a)].astype(np.float32)
        co = a.T @ b                                          # previous local x this local
        for j in np.argsort(-co.max(0)):
            i = int(co[:, j].argmax())
            if co[i, j] >= 10 and co[i, j] >= 0.5 * b[:, j].sum() and track[c - 1][i] not in track[c]:
                track[c][j] = track[c - 1][i]
            else:
                track[c][j] = nxt
                nxt += 1
    return track


def speaker_changes(starts: list[int], act: np.ndarray, n_samples: int) -> list[float]:
    """Seconds where the voice heard alone changes: each frame is read from the window whose
    centre is nearest (the model sees most context there), local speakers are followed from
    window to window (``_tracks``), and a change lies midway between the last frame of one
    voice alone and the first of the next (overlap and silence between are neither)."""
    fstep, nf = segmentation.FRAME_STEP, act.shape[1]
    n = _frames(n_samples)
    offs = np.array([int(round(s / RATE / fstep)) for s in starts])
    centres = offs + nf / 2
    g = np.arange(n)
    # the window each frame is read from: the nearer of the two centres around it (the earlier on
    # a tie); centres rise with the windows, so a search, not a frames x windows table
    right = np.clip(np.searchsorted(centres, g), 1, max(len(centres) - 1, 1))
    home = np.where(np.abs(g - centres[right - 1]) <= np.abs(centres[right] - g), right - 1, right) \
        if len(centres) > 1 else np.zeros(n, int)
    local = act[home, np.clip(g - offs[home], 0, nf - 1)]        # (frames, 3)
    inside = (g - offs[home] >= 0) & (g - offs[home] < nf)
    track = _tracks(starts, act)
    alone = inside & (local.sum(1) == 1)
    solo = np.where(alone, track[home, local.argmax(1)], -1)
    known = np.flatnonzero(solo >= 0)
    offset = segmentation.FRAME_SIZE / 2 - fstep / 2
    turn = np.flatnonzero(solo[known[1:]] != solo[known[:-1]]) if len(known) > 1 else np.zeros(0, int)
    return [round(float((known[i] + known[i + 1] + 1) / 2 * fstep + offset), 3) for i in turn.tolist()]


def split_at(utterances: Sequence[tuple[float, float]], changes: Sequence[float],
             min_piece: float = MIN_PIECE) -> list[tuple[float, float]]:
    """Utterances cut at the speaker changes inside them; a cut that would leave a piece shorter
    than ``min_piece`` seconds is not made."""
    out: list[tuple[float, float]] = []
    ch = sorted(changes)
    for a, b in utterances:
        cuts = [a]
        for c in ch:
            if cuts[-1] + min_piece <= c <= b - min_piece:
                cuts.append(c)
        cuts.append(b)
        out += list(itertools.pairwise(cuts))
    return out


def second_voices(segments: Sequence[tuple[float, float, T]],
                  found: Sequence[tuple[float, float]]) -> list[tuple[float, float, T]]:
    """The second voice over each labelled segment an overlap stretch touches, as (start, end,
    speaker) over that part of the segment: the speaker of the nearest segment (within ``NEAR``
    s, the stretch's other side included) by someone other than the segment's own. Where a
    change of speaker was cut inside the stretch, each side gets the other; a stretch where
    nobody is labelled, or nobody else is near, is left."""
    out = []
    for a, b in found:
        for s in segments:
            lo, hi = max(a, s[0]), min(b, s[1])
            if hi <= lo:
                continue
            mid = (lo + hi) / 2
            others = sorted(((max(o[0] - mid, mid - o[1], 0.0), i) for i, o in enumerate(segments)
                             if o[2] != s[2]))
            if others and others[0][0] <= NEAR:
                out.append((lo, hi, segments[others[0][1]][2]))
    return out
