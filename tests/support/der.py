"""Diarization error rate, scored the NIST way on a fine time grid.

    DER = (missed speech + false alarm + speaker confusion) / reference speech

Each grid frame (10 ms) counts its reference speakers ``R`` and hypothesis
speakers ``H``; with ``C`` the hypothesis speakers that map onto a reference
speaker present in the frame, the frame adds ``max(0, R - H)`` missed,
``max(0, H - R)`` false alarm and ``min(R, H) - C`` confusion, and ``R`` to the
total. Frames within ``collar`` seconds of any reference boundary (a turn's
start or end) are not scored. Hypothesis speakers map one-to-one onto
reference speakers so as to maximise the scored time they share (the
Hungarian algorithm); unmapped hypothesis speakers are confusion wherever the
reference has speech. Overlapping reference turns count every speaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

Segments = Sequence[tuple[float, float, str]]
STEP = 0.01


class DERParts(NamedTuple):
    missed: float        # fractions of the scored reference speech
    false_alarm: float
    confusion: float
    speech: float        # scored reference speech, seconds

    @property
    def der(self) -> float:
        return self.missed + self.false_alarm + self.confusion


def _grid(segments: Segments, n: int) -> tuple[list[str], np.ndarray]:
    """Speakers (first appearance) and a (speakers, frames) bool activity matrix."""
    names = list(dict.fromkeys(s for _, _, s in sorted(segments, key=lambda s: s[0])))
    act = np.zeros((len(names), n), bool)
    for start, end, spk in segments:
        a, b = int(round(start / STEP)), int(round(end / STEP))
        act[names.index(spk), max(a, 0):max(min(b, n), 0)] = True
    return names, act


def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment of rows to columns (any shape): (row, col) pairs."""
    cost = np.asarray(cost, float)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape  # n <= m
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, int)  # p[j]: row (1-based) assigned to column j; column 0 is the free row
    way = np.zeros(m + 1, int)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv[1:], np.inf))) + 1
            delta = minv[j1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return sorted((c, r) for r, c in pairs) if transposed else sorted(pairs)


def der_parts(reference: Segments, hypothesis: Segments, collar: float = 0.25) -> DERParts:
    end = max([e for _, e, _ in list(reference) + list(hypothesis)], default=0.0)
    n = int(np.ceil(end / STEP)) + 1
    _, ref = _grid(reference, n)
    _, hyp = _grid(hypothesis, n)
    scored = np.ones(n, bool)
    if collar > 0:
        c = int(round(collar / STEP))
        for start, stop, _ in reference:
            for t in (int(round(start / STEP)), int(round(stop / STEP))):
                scored[max(t - c, 0):max(t + c, 0)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(0), hyp.sum(0)
    total = float(n_ref.sum())
    correct = 0.0
    if len(ref) and len(hyp):
        shared = hyp.astype(np.float32) @ ref.T.astype(np.float32)  # (hyp, ref) frames together
        correct = float(sum(shared[h, r] for h, r in hungarian(-shared)))
    missed = float(np.maximum(n_ref - n_hyp, 0).sum())
    fa = float(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = float(np.minimum(n_ref, n_hyp).sum()) - correct
    if total == 0:
        bad = float("inf") if fa else 0.0
        return DERParts(0.0, bad, 0.0, 0.0)
    return DERParts(missed / total, fa / total, confusion / total, total * STEP)


def der(reference: Segments, hypothesis: Segments, collar: float = 0.25) -> float:
    return der_parts(reference, hypothesis, collar).der


def labelled(utterances: Sequence[tuple[float, float]],
             labels: Sequence[int]) -> list[tuple[float, float, str]]:
    """Utterance spans with cluster labels, as hypothesis segments."""
    return [(a, b, f"h{int(k)}") for (a, b), k in zip(utterances, labels)]
