"""Transcription speed on a 10-minute synthetic meeting, measured side by side.

1. Pipeline overhead: wall time of the whole pipeline (decode, VAD, cutting,
   model, embeddings, library writes, diarization) vs the time the model alone
   spends on the same utterances (the same batched calls on pre-cut audio).
   Goal: overhead <= 10%.
2. Parallel vs one by one: the model's time for all utterances with 4
   sequences decoded together vs one utterance at a time. Goal: >= 2x.
3. Diarization: embedding + clustering time as a share of the audio's
   duration. Goal: < 1%.

The model is a random Gemma 4 (with the audio projector) sized so that reading
its weights, not Python, dominates a decode step (~130M parameters, F16); a
real 12B model is far slower per token, which makes the overhead smaller still.

    python bench/transcribe.py [--minutes 10] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all, as the app)")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--small", action="store_true", help="the tiny test model (quick smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import llama_cpp  # noqa: F401  (before numpy: see app/engine/__init__.py)
    import numpy as np

    from app.engine.engine import Engine, EngineConfig
    from app.library import Library
    from app.media.diarize import cluster, embed
    from app.pipeline.transcribe import TranscribeOptions, cut, scan, transcribe_file
    from app.pipeline.utterances import prompt_for
    from tests.support import tiny_model as tm
    from tests.support.meetings import make_meeting

    tmp = Path(tempfile.mkdtemp(prefix="minutely-bench-"))
    turns = max(4, int(args.minutes * 60 / 4.2))  # ~4 s a turn with gaps
    meeting = make_meeting(tmp, 4, turns, seed=11)
    if args.small:
        model, mmproj = tm.write_pair(tmp / "model")
    else:
        model = tm.write_model(tmp / "bench.gguf", n_embd=1024, n_layer=8, n_head=8, n_head_kv=4,
                               head_dim=128, n_ff=4096)
        mmproj = tm.write_mmproj(tmp / "bench-mmproj.gguf", projection_dim=1024)
    cfg = EngineConfig(n_ctx=16384, n_threads=args.threads, n_parallel=args.parallel)
    opts = TranscribeOptions(parallel=args.parallel)
    res: dict = {"audio_s": round(meeting.duration, 1), "threads": args.threads, "parallel": args.parallel}

    with Engine(model, mmproj, cfg) as engine:
        # the whole pipeline
        with Library.open(tmp / "data") as lib:
            t = time.perf_counter()
            sid = transcribe_file(lib, engine, meeting.wav, opts)
            res["pipeline_s"] = time.perf_counter() - t
            res["segments"] = len(lib.segments(sid))
        utts = scan(meeting.wav).utterances
        audio = [a for _, a in cut(meeting.wav, utts, 0)]
        res["utterances"] = len(audio)
        convs = [prompt_for(a, opts) for a in audio]
        budgets = [int(16 + opts.tokens_per_second * len(a) / 16000) for a in audio]

        def model_only(parallel: int) -> float:
            t = time.perf_counter()
            for i in range(0, len(convs), parallel):
                group = convs[i:i + parallel]
                engine.chat_batch(group, max_tokens=max(budgets[i:i + parallel]))
            return time.perf_counter() - t

        res["model_parallel_s"] = model_only(args.parallel)
        res["model_serial_s"] = model_only(1)
    t = time.perf_counter()
    emb = np.stack([embed(a) for a in audio])
    cluster(emb, durations=np.array([len(a) / 16000 for a in audio]))
    res["diarize_s"] = time.perf_counter() - t

    res["overhead"] = res["pipeline_s"] / res["model_parallel_s"] - 1
    res["parallel_speedup"] = res["model_serial_s"] / res["model_parallel_s"]
    res["diarize_share"] = res["diarize_s"] / meeting.duration
    res = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['audio_s'] / 60:.1f} min meeting, {res['utterances']} utterances, "
          f"{args.threads} thread(s), {args.parallel} in parallel")
    print(f"  pipeline            {res['pipeline_s']:8.2f} s")
    print(f"  model alone         {res['model_parallel_s']:8.2f} s   overhead {res['overhead']:+.1%} (goal <= 10%)")
    print(f"  model one by one    {res['model_serial_s']:8.2f} s   parallel is {res['parallel_speedup']:.2f}x "
          f"(goal >= 2x)")
    print(f"  diarization         {res['diarize_s']:8.2f} s   {res['diarize_share']:.3%} of the audio (goal < 1%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
