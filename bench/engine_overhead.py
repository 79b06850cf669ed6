"""Tokens/s through Engine and EngineHost vs raw llama-cpp-python, side by side.

The same model, prompt, thread count and number of generated tokens; the three
are run interleaved (rotating order) in one process so machine noise hits all
of them alike, and the medians are compared as ratios. Goal: >= 95% for both.

    python bench/engine_overhead.py [--model M.gguf] [--tokens 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import llama_cpp

    from app.engine.engine import Engine, EngineConfig
    from app.engine.host import EngineHost
    from app.engine.messages import Message

    model = reference_model(args.model)
    cfg = EngineConfig(n_ctx=2048, n_threads=args.threads, n_batch=2048)
    msgs = [Message.user("Write a short report about the quarterly budget meeting.")]
    n = args.tokens

    engine = Engine(model, None, cfg, chat_template=GEMMA_TEMPLATE, require_arch=None)
    host = EngineHost(model, None, cfg, chat_template=GEMMA_TEMPLATE, require_arch=None)
    host.start()
    raw = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads,
                          n_batch=2048, n_ubatch=2048, verbose=False)
    # the very prompt the engine evaluates, as tokens, for the raw run
    from app.engine.prompt import render

    text = render(GEMMA_TEMPLATE, msgs, "<__media__>", engine._bos, engine._eos)
    prompt = raw.tokenize(text.encode(), add_bos=False, special=True)

    def run_raw() -> float:
        raw.reset()
        t = time.perf_counter()
        got = 0
        for _tok in raw.generate(prompt, top_k=1, temp=0.0, reset=True):
            got += 1
            if got >= n:
                break
        return time.perf_counter() - t

    def run_engine(e) -> float:
        e.reset()
        t = time.perf_counter()
        r = e.chat(msgs, max_tokens=n, ignore_eos=True)
        assert r.generated_tokens == n, r
        return time.perf_counter() - t

    runs = {"raw": run_raw, "engine": lambda: run_engine(engine), "host": lambda: run_engine(host)}
    for f in runs.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for i in range(args.rounds):
        for k in order[i % 3:] + order[:i % 3]:
            times[k].append(runs[k]())
    host.close()
    engine.close()
    tps = {k: n / median(v) for k, v in times.items()}
    res = {"model": Path(model).name, "tokens": n, "rounds": args.rounds, "threads": args.threads,
           "prompt_tokens": len(prompt),
           "tokens_per_s": {k: round(v, 1) for k, v in tps.items()},
           "engine_vs_raw": round(tps["engine"] / tps["raw"], 3),
           "host_vs_raw": round(tps["host"] / tps["raw"], 3)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['model']}: {n} tokens after a {len(prompt)}-token prompt, {args.threads} thread(s), "
              f"median of {args.rounds} interleaved rounds")
        for k in ("raw", "engine", "host"):
            print(f"  {k:<7} {tps[k]:8.1f} tok/s")
        print(f"  Engine / raw     = {res['engine_vs_raw']:.1%}  (goal >= 95%)")
        print(f"  EngineHost / raw = {res['host_vs_raw']:.1%}  (goal >= 95%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
