"""Questions about a meeting and a video: what the pipeline costs next to the model.

1. Chat over a one-hour meeting (SessionChat, a real SQLite library): time to
   first token of a follow-up question vs the first question, side by side in
   each round (goal: follow-up <= 10%), and the chat's own overhead per
   follow-up (reading history, fitting the context, storing both turns) next to
   the engine's time. Text model: Gemma 3 270M from PyPI (no chat template:
   bench/common.py gives it one).
2. A video question (ask_video over a video session with one frame a second):
   wall time vs the engine's own time for the same call (prompt + generation),
   on the tiny Gemma 4 (the only vision model available offline here), so the
   overhead (planning the span, counting the frame cost, reading frames and the
   transcript) is shown in milliseconds and as a share of that call.

    python bench/ask.py [--model M.gguf] [--minutes 60] [--rounds 3] [--video-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402

NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli"]
TOPICS = ["the budget", "the launch date", "hiring", "the customer survey", "the roadmap",
          "the office move", "security review", "the quarterly report"]


def fill_meeting(lib, minutes: float) -> int:
    s = lib.create_session("Quarterly planning", "recording")
    rows, t, i = [], 0.0, 0
    while t < minutes * 60:
        dur = 4.0 + (i * 7 % 5)
        rows.append({"start": t, "end": t + dur, "speaker": NAMES[i % 5],
                     "text": f"About {TOPICS[i % 8]}, I think we should look at item {i} again before we "
                             f"decide anything final."})
        t += dur + 1.0
        i += 1
    lib.add_segments(s.id, rows)
    return s.id


def bench_chat(args, tmp: Path) -> dict:
    from app.engine.engine import Engine, EngineConfig
    from app.library import Library
    from app.pipeline.chat import SessionChat

    model = reference_model(args.model)
    lib = Library.open(tmp / "chat")
    sid = fill_meeting(lib, args.minutes)
    engine = Engine(model, None, EngineConfig(n_ctx=args.ctx, n_threads=args.threads),
                    chat_template=GEMMA_TEMPLATE, require_arch=None)
    first, follow, overhead, follow_engine = [], [], [], []
    n_first = n_follow = n_new = 0
    try:
        for _ in range(args.rounds):
            engine.reset()
            lib.clear_chat(sid)
            chat = SessionChat(lib, engine, sid)
            if not chat.whole:
                raise SystemExit(f"the transcript does not fit --ctx {args.ctx}; raise it")
            a1 = chat.ask("What did we decide about the budget?", max_tokens=args.tokens)
            t0 = time.perf_counter()
            a2 = chat.ask("And who will follow up on hiring?", max_tokens=args.tokens)
            wall = time.perf_counter() - t0
            r1, r2 = a1.reply, a2.reply
            first.append(r1.time_to_first_token)
            follow.append(r2.time_to_first_token)
            follow_engine.append(r2.prompt_seconds + r2.generate_seconds)
            overhead.append(wall - (r2.prompt_seconds + r2.generate_seconds))
            n_first, n_follow = r1.evaluated_tokens, r2.evaluated_tokens
            n_new = r2.prompt_tokens - r1.prompt_tokens  # the answer + the new question: what reuse leaves
    finally:
        engine.close()
        lib.close()
    return {"model": Path(model).name, "minutes": args.minutes, "prompt_tokens": n_first,
            "followup_evaluated_tokens": n_follow, "followup_new_tokens": n_new,
            "ttft_first_s": round(median(first), 3),
            "ttft_followup_s": round(median(follow), 4), "ratio": round(median(follow) / median(first), 4),
            "followup_engine_s": round(median(follow_engine), 4),
            "chat_overhead_s": round(median(overhead), 4)}


def bench_video(args, tmp: Path) -> dict:
    import numpy as np

    from app.engine.engine import Engine, EngineConfig
    from app.library import Library
    from app.pipeline.video import FrameOptions, ask_video, import_video
    from tests.support import tiny_model as tm
    from tests.support.media_factory import make_video

    model, mmproj = tm.write_pair(tmp / "tiny")
    video = make_video(tmp / "clip.mp4", args.video_seconds, fps=2, size=(640, 360),
                       audio=np.zeros(0, np.float32))
    lib = Library.open(tmp / "video")
    engine = Engine(model, mmproj, EngineConfig(n_ctx=args.video_ctx, n_threads=args.threads))
    walls, engine_s, frames, prompt = [], [], 0, 0
    try:
        t0 = time.perf_counter()
        sid = import_video(lib, engine, video, frame_opts=FrameOptions(mode="interval"))
        import_s = time.perf_counter() - t0
        rows = [{"start": float(t), "end": t + 4.0, "speaker": NAMES[t % 5], "text": f"slide {t} shows the chart"}
                for t in range(0, int(args.video_seconds), 5)]
        lib.add_segments(sid, rows)
        for _ in range(args.rounds):
            engine.reset()
            t0 = time.perf_counter()
            ans = ask_video(lib, engine, sid, "What is shown on the slides?", max_tokens=8, save=False)
            walls.append(time.perf_counter() - t0)
            r = ans.reply
            engine_s.append(r.prompt_seconds + r.generate_seconds)
            frames, prompt = len(ans.plan.frames), r.prompt_tokens
    finally:
        engine.close()
        lib.close()
    over = [w - e for w, e in zip(walls, engine_s, strict=True)]
    return {"video_seconds": args.video_seconds, "frames": frames, "prompt_tokens": prompt,
            "import_s": round(import_s, 3), "ask_wall_s": round(median(walls), 4),
            "ask_engine_s": round(median(engine_s), 4), "overhead_s": round(median(over), 4),
            "overhead_share": round(median(over) / median(walls), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the meeting")
    ap.add_argument("--ctx", type=int, default=32768, help="context of the text model")
    ap.add_argument("--tokens", type=int, default=16, help="answer tokens per question")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--video-seconds", type=float, default=120.0)
    ap.add_argument("--video-ctx", type=int, default=16384)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import llama_cpp  # noqa: F401  (before numpy: see app/engine/__init__.py)

    with tempfile.TemporaryDirectory() as d:
        chat = bench_chat(args, Path(d))
        video = bench_video(args, Path(d))
    res = {"chat": chat, "video": video}
    if args.json:
        print(json.dumps(res))
        return 0
    c, v = chat, video
    print(f"{c['model']}: {c['minutes']:.0f}-minute meeting, transcript prompt of {c['prompt_tokens']} tokens, "
          f"{args.threads} thread(s), median of {args.rounds}")
    print(f"  first question   TTFT {c['ttft_first_s']:.3f} s ({c['prompt_tokens']} tokens evaluated)")
    print(f"  follow-up        TTFT {c['ttft_followup_s']:.4f} s ({c['followup_evaluated_tokens']} tokens evaluated)")
    print(f"  follow-up / first = {c['ratio']:.1%}  (goal <= 10%)")
    print(f"  chat overhead per follow-up {c['chat_overhead_s'] * 1000:.1f} ms next to the engine's "
          f"{c['followup_engine_s'] * 1000:.1f} ms")
    print(f"video ({v['video_seconds']:.0f} s, {v['frames']} frames, {v['prompt_tokens']}-token prompt, tiny Gemma 4): "
          f"import {v['import_s']:.2f} s")
    print(f"  question wall {v['ask_wall_s'] * 1000:.1f} ms, engine {v['ask_engine_s'] * 1000:.1f} ms, "
          f"overhead {v['overhead_s'] * 1000:.1f} ms ({v['overhead_share']:.1%} of the call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
