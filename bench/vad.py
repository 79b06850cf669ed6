"""Voice activity detection and segmentation on synthetic meetings with exact truth.

For 2-4 speakers, clean and noisy (white noise RMS 0.01 and 0.02), a few seeds
(espeak-ng voices, gaps of 0.3-0.9 s between turns, built with
tests/support/meetings.py into a temporary folder), side by side for earshot and the
energy baseline (``EnergyVAD``, noise floor + margin):

- frame accuracy of the per-16 ms-frame speech decision (``frame_speech``)
  against the truth turns (a turn counts as speech from its start to its end);
- frame accuracy of the utterances (padded, merged across pauses) likewise;
- boundary-split rate: the share of changes of speaker with a gap >= 0.3 s where
  no utterance holds more than 50 ms of both turns;
- real-time factor of ``segment()`` (wall time / audio duration, earshot included).

    python bench/vad.py [--seeds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tests.support.meetings import covered_frames  # noqa: E402

FPS = 62.5


def truth_frames(turns, n: int) -> np.ndarray:
    return covered_frames(turns, n, FPS)


def utterance_frames(utts, n: int) -> np.ndarray:
    return covered_frames(utts, n, FPS)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def boundary_splits(turns, utts, min_gap: float = 0.3, slack: float = 0.05) -> list[bool]:
    """For each change of speaker with a gap >= ``min_gap``: True when no utterance holds
    more than ``slack`` seconds of both turns."""
    out = []
    for a, b in zip(turns, turns[1:], strict=False):
        if a.speaker != b.speaker and b.start - a.end >= min_gap:
            out.append(not any(_overlap(u.start, u.end, a.start, a.end) > slack
                               and _overlap(u.start, u.end, b.start, b.end) > slack for u in utts))
    return out


def measure(meeting, samples: np.ndarray) -> dict:
    from app.media.vad import EnergyVAD, frame_speech, segment

    n = len(samples) // 256
    truth = truth_frames(meeting.turns, n)
    t = time.perf_counter()
    utts = segment(samples)
    wall = time.perf_counter() - t
    utts_e = segment(samples, detector=EnergyVAD())
    return {
        "frame_earshot": float((frame_speech(samples) == truth).mean()),
        "frame_energy": float((frame_speech(samples, EnergyVAD()) == truth).mean()),
        "utt_earshot": float((utterance_frames(utts, n) == truth).mean()),
        "utt_energy": float((utterance_frames(utts_e, n) == truth).mean()),
        "splits_earshot": boundary_splits(meeting.turns, utts),
        "splits_energy": boundary_splits(meeting.turns, utts_e),
        "utterances": len(utts), "turns": len(meeting.turns),
        "max_len": max((u.duration for u in utts), default=0.0),
        "wall_s": wall, "audio_s": meeting.duration,
    }


def summarize(rows: list[dict]) -> dict:
    def mean(k):
        return round(float(np.mean([r[k] for r in rows])), 4)

    def rate(k):
        s = [x for r in rows for x in r[k]]
        return round(float(np.mean(s)), 4) if s else 1.0

    return {"frame_earshot": mean("frame_earshot"), "frame_energy": mean("frame_energy"),
            "utt_earshot": mean("utt_earshot"), "utt_energy": mean("utt_energy"),
            "split_earshot": rate("splits_earshot"), "split_energy": rate("splits_energy"),
            "boundaries": sum(len(r["splits_earshot"]) for r in rows),
            "utterances": sum(r["utterances"] for r in rows), "turns": sum(r["turns"] for r in rows),
            "max_len": round(max(r["max_len"] for r in rows), 2),
            "rtf": round(sum(r["wall_s"] for r in rows) / sum(r["audio_s"] for r in rows), 5)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        raise SystemExit("needs espeak-ng and sox (scripts/setup.sh --test installs them)")
    noises = (0.0, 0.01, 0.02)
    groups: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="minutely-vad-") as tmp:
        for spk in (2, 3, 4):
            for noise in noises:
                for seed in range(args.seeds):
                    m = make_meeting(Path(tmp), spk, args.turns, seed=seed, noise=noise,
                                     name=f"m{spk}-{noise}-{seed}.wav")
                    groups.setdefault(f"{spk} spk, noise {noise:.2f}", []).append(measure(m, m.samples()))
        # a long stream: the real-time factor with the fixed per-call costs amortised
        long = make_meeting(Path(tmp), 4, 150, seed=99, noise=0.01, name="long.wav")
        x = long.samples()
        from app.media.vad import segment

        t = time.perf_counter()
        segment(x)
        long_rtf = (time.perf_counter() - t) / long.duration
    rows = {k: summarize(v) for k, v in groups.items()}
    for noise in noises:
        rows[f"all, noise {noise:.2f}"] = summarize([r for k, v in groups.items() if k.endswith(f"{noise:.2f}")
                                                     for r in v])
    rows["all"] = summarize([r for v in groups.values() for r in v])
    res = {"rows": rows, "long_audio_s": round(long.duration, 1), "long_rtf": round(long_rtf, 5)}
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{args.seeds} seed(s) x {args.turns} turns per meeting; frame accuracy vs truth, "
          "split = speaker changes (gap >= 0.3 s) cut apart")
    print(f"{'':22} {'frame acc':>17} {'utterance acc':>17} {'split rate':>17} {'utts/turns':>11} "
          f"{'max s':>6} {'RTF':>8}")
    print(f"{'':22} {'earshot':>8} {'energy':>8} {'earshot':>8} {'energy':>8} {'earshot':>8} {'energy':>8}")
    for k, r in rows.items():
        print(f"{k:22} {r['frame_earshot']:8.3f} {r['frame_energy']:8.3f} {r['utt_earshot']:8.3f} "
              f"{r['utt_energy']:8.3f} {r['split_earshot']:8.3f} {r['split_energy']:8.3f} "
              f"{r['utterances']:5}/{r['turns']:<5} {r['max_len']:6.1f} {r['rtf']:8.5f}")
    print(f"real-time factor on a {res['long_audio_s'] / 60:.1f}-minute stream: {res['long_rtf']:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
