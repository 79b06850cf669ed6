"""Summary of a one-hour transcript: pipeline time vs the model's own time, one pass vs map-reduce.

1. overhead: ``summarize()`` on a one-hour meeting (one pass), then the very same
   model calls (recorded messages and options) replayed straight on the engine
   from the same cache state. Overhead = pipeline / replay - 1 (goal <= 10%):
   what the library writes while streaming, token counting, templates and JSON
   handling cost on top of the model.
2. map-reduce: the same meeting with the context the summary may use cut to a
   quarter of the transcript's size, so it takes the map-reduce path; its time
   and model tokens against the one pass.

All runs in one process, same model and threads; with --rounds N the pipeline
and the replay alternate order each round and medians are compared.

    python bench/summarize.py [--model M.gguf] [--minutes 60] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402

PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Emma"]
TOPICS = ["the budget for the next quarter", "the launch of the mobile app", "hiring two designers",
          "the office move to Lisbon", "the customer survey results", "the security audit",
          "the marketing campaign", "the data centre costs", "the support backlog", "the training plan"]
VERBS = ["I think we should look again at", "We agreed last week on", "Can someone own", "My worry is about",
         "The numbers look good for", "We still have no answer on", "Let me send a note about",
         "I can take the lead on"]
ENDS = ["before Friday.", "by the end of the month.", "with the finance team.", "once the report is in.",
        "and share it in the channel.", "if the client agrees.", "next sprint.", "after the review."]


def meeting(lib, minutes: float, seed: int = 7) -> int:
    rnd = random.Random(seed)
    s = lib.create_session("Quarterly planning", "file")
    segs, t = [], 0.0
    while t < minutes * 60:
        n = rnd.randint(1, 3)
        text = " ".join(f"{rnd.choice(VERBS)} {rnd.choice(TOPICS)} {rnd.choice(ENDS)}" for _ in range(n))
        dur = 2.5 * n + rnd.random() * 3
        segs.append({"start": t, "end": t + dur, "text": text, "speaker": rnd.choice(PEOPLE)})
        t += dur + 0.5
    lib.add_segments(s.id, segs)
    return s.id


class Recorder:
    """The engine, with every stream call's messages and options written down."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def stream(self, messages, options=None, **kw):
        self.calls.append((list(messages), dict(kw)))
        return self.engine.stream(messages, options, **kw)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the meeting")
    ap.add_argument("--md-tokens", type=int, default=256, help="Markdown budget")
    ap.add_argument("--items-tokens", type=int, default=256, help="structured results budget")
    ap.add_argument("--ctx", type=int, default=0, help="context size (default: fits the one pass)")
    ap.add_argument("--rounds", type=int, default=1, help="pipeline/replay pairs, order alternating (medians)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from app.engine.engine import Engine, EngineConfig
    from app.engine.messages import Message
    from app.library import Library
    from app.pipeline.context import render, text_counter, transcript_lines
    from app.pipeline.summarize import SummaryOptions, summarize

    model = reference_model(args.model)
    with tempfile.TemporaryDirectory() as tmp, Library.open(tmp) as lib:
        sid = meeting(lib, args.minutes)
        probe = Engine(model, None, EngineConfig(n_ctx=1024, n_threads=args.threads), chat_template=GEMMA_TEMPLATE,
                       require_arch=None)
        transcript_tokens = text_counter(probe)(render(transcript_lines(lib, sid)))
        probe.close()
        n_ctx = args.ctx or transcript_tokens + args.md_tokens + args.items_tokens + 1024
        engine = Engine(model, None, EngineConfig(n_ctx=n_ctx, n_threads=args.threads, n_batch=2048),
                        chat_template=GEMMA_TEMPLATE, require_arch=None)
        opts = SummaryOptions(max_tokens=args.md_tokens, items_max_tokens=args.items_tokens, temperature=0.0)

        def run(context=None):
            rec = Recorder(engine)
            engine.reset()
            t = time.perf_counter()
            r = summarize(lib, rec, sid, "general", SummaryOptions(**{**opts.__dict__, "context": context}))
            return time.perf_counter() - t, r, rec.calls

        def replay(calls):
            engine.reset()
            t0 = time.perf_counter()
            got = [engine.chat([Message(m.role, m.parts) for m in msgs], **kw) for msgs, kw in calls]
            return time.perf_counter() - t0, got

        pipe_times, raw_times, model_owns = [], [], []
        calls: list = []  # round 0 (even) sets it before an odd round replays it
        for i in range(args.rounds):  # alternate the order: machine noise hits both alike
            if i % 2:
                raw_times.append(replay(calls)[0])
            t_pipe, one, calls_i = run()
            pipe_times.append(t_pipe)
            model_owns.append(sum(x.prompt_seconds + x.generate_seconds for x in one.replies))
            calls = calls_i
            if i % 2 == 0:
                t_raw, replayed = replay(calls)
                raw_times.append(t_raw)
                assert [x.generated_tokens for x in replayed] == [x.generated_tokens for x in one.replies]
        t_pipe, t_raw, model_own = median(pipe_times), median(raw_times), median(model_owns)
        t_mr, mr, _ = run(context=max(1024, transcript_tokens // 4))
        engine.close()

    def tokens(r):
        return {"evaluated": sum(x.evaluated_tokens for x in r.replies),
                "generated": sum(x.generated_tokens for x in r.replies)}

    res = {"model": Path(model).name, "minutes": args.minutes, "threads": args.threads, "rounds": args.rounds,
           "transcript_tokens": transcript_tokens, "n_ctx": n_ctx,
           "one_pass": {"mode": one.mode, "seconds": round(t_pipe, 2), "calls": len(one.replies), **tokens(one)},
           "replay_seconds": round(t_raw, 2), "model_own_seconds": round(model_own, 2),
           "overhead_vs_replay": round(t_pipe / t_raw - 1, 3),
           "overhead_vs_model_own": round(t_pipe / model_own - 1, 3),
           "map_reduce": {"mode": mr.mode, "parts": mr.parts, "seconds": round(t_mr, 2), "calls": len(mr.replies),
                          **tokens(mr)},
           "map_reduce_vs_one_pass": round(t_mr / t_pipe, 2)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['model']}: a {args.minutes:g}-minute meeting = {transcript_tokens} transcript tokens, "
              f"{args.threads} thread(s), n_ctx {n_ctx}")
        o = res["one_pass"]
        print(f"  one pass      {o['seconds']:7.2f} s  ({o['calls']} calls, {o['evaluated']} tokens evaluated, "
              f"{o['generated']} generated)")
        print(f"  same calls straight on the engine {t_raw:7.2f} s; the model's own time {model_own:.2f} s")
        print(f"  pipeline overhead = {res['overhead_vs_replay']:+.1%} vs the replay, "
              f"{res['overhead_vs_model_own']:+.1%} vs the model's own time  (goal <= 10%)")
        m = res["map_reduce"]
        print(f"  map-reduce    {m['seconds']:7.2f} s  ({m['parts']} parts, {m['calls']} calls, {m['evaluated']} "
              f"tokens evaluated, {m['generated']} generated) = {res['map_reduce_vs_one_pass']:.2f}x the one pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
