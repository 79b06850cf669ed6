"""What speaker attribution costs, as a share of the audio's duration, step by step, side by side.

    python bench/diarize_time.py [--minutes 11] [--json]      (run it on one core: taskset -c 0)

On a synthetic 4-voice meeting (tests/support/meetings.py, ~11 min by default): the VAD alone,
the scan transcription makes (VAD + the speaker segmentation model, in one read), then each
speaker embedding (MFCC and CAM++) of the scanned utterances and their clustering. Best of two.
The issue's goal for diarization is 1 % of the duration on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(f, n: int = 2):
    out, took = None, float("inf")
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        took = min(took, time.perf_counter() - t)
    return took, out


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from app.media import diarize, segmentation
    from app.media.audio import iter_audio
    from app.media.vad import Segmenter
    from app.pipeline.transcribe import cut, scan
    from tests.support.meetings import have_tools, make_meeting

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=11.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not have_tools():
        raise SystemExit("the synthetic meeting needs espeak-ng and sox")
    with tempfile.TemporaryDirectory() as d:
        m = make_meeting(Path(d), 4, max(8, int(args.minutes * 60 / 4.9)), seed=11, gap=(0.5, 2.0), name="long.wav")
        dur = m.duration

        def vad_only():
            s, found = Segmenter(), []
            for block in iter_audio(m.wav, block_seconds=10.0):
                found += s.push(block)
            return found + s.flush()

        segmentation.load()
        r: dict = {"audio_s": dur, "model": segmentation.checkpoint_path() is not None}
        r["vad_pct"] = 100 * best(vad_only)[0] / dur
        t, sc = best(lambda: scan(m.wav))
        r["scan_pct"] = 100 * t / dur
        r["utterances"] = len(sc.utterances)
        clips = [a for _, a in cut(m.wav, sc.utterances, 0)]
        durs = np.array([b - a for a, b in sc.utterances])
        for kind in ("mfcc", "campp"):
            f = diarize.embedder(kind)
            f(clips[0], 16000)                       # loaded before timing
            t, emb = best(lambda f=f: np.stack([f(c, 16000) for c in clips]))
            tc, lab = best(lambda emb=emb: diarize.cluster(emb, None, durs))
            r[kind] = {"embed_pct": 100 * t / dur, "cluster_pct": 100 * tc / dur, "found": int(lab.max()) + 1,
                       "dims": int(emb.shape[1])}
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"audio {dur / 60:.1f} min, {r['utterances']} utterances")
    print(f"VAD alone {r['vad_pct']:.2f} %; scan (VAD + segmentation model) {r['scan_pct']:.2f} %")
    for kind in ("mfcc", "campp"):
        k = r[kind]
        print(f"{kind:6} ({k['dims']} dims): embeddings {k['embed_pct']:.2f} %, clustering {k['cluster_pct']:.3f} %, "
              f"found {k['found']} voices; with the scan: {r['scan_pct'] + k['embed_pct'] + k['cluster_pct']:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
