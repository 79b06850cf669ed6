"""Tokens/s with and without Gemma 4's MTP drafter, side by side in one run.

With the real files (``--model`` Gemma 4 + ``--drafter`` its ``gemma4-assistant`` GGUF, best on a
GPU: ``--gpu-layers -1``) the figure is the point: how much faster text turns decode. Without them
the benchmark writes random models (tests/support/tiny_model.py), so it measures the machinery,
not the speed-up: a random drafter's proposals are rejected (acceptance ~0), which is the pure
overhead of drafting and verifying; and an "echo" drafter (it proposes the last token again)
against a model that mostly repeats itself has most proposals accepted: the loop's gain when the
drafter guesses well, against its cost on this machine.
Runs are interleaved (rotating order) and the medians compared as ratios.

    python bench/speculative.py [--model M.gguf --drafter D.gguf] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median  # noqa: E402

PROMPT = ("Summarize the meeting in five bullet points and list the action items with their owners: "
          "Ana will send the budget report on Friday, Ben books the venue, Chloe hires two engineers.")


def _random_models(tmp: Path, size: str) -> dict[str, Path]:
    from tests.support import tiny_model as tm

    dims = {"tiny": dict(n_embd=128, n_layer=4, n_ff=256),
            "bench": dict(n_embd=768, n_layer=6, n_ff=3072)}[size]
    model = tm.write_model(tmp / "model.gguf", **dims)
    drafter = tm.write_drafter(tmp / "drafter.gguf", target_embd=dims["n_embd"],
                               n_embd=dims["n_embd"] // 4, n_ff=dims["n_ff"] // 4)
    tied = tm.write_model(tmp / "tied.gguf", tied=True, scale=0.01, **dims)
    echo = tm.write_drafter(tmp / "echo.gguf", target_embd=dims["n_embd"], n_embd=dims["n_embd"] // 4,
                            n_ff=dims["n_ff"] // 4, echo_of=tied)
    return {"model": model, "drafter": drafter, "tied": tied, "echo": echo}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="Gemma 4 GGUF (default: random models written here)")
    ap.add_argument("--drafter", type=Path, help="its MTP drafter GGUF (arch gemma4-assistant)")
    ap.add_argument("--size", choices=("tiny", "bench"), default="bench",
                    help="size of the random models when no --model is given")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-layers", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-draft", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.drafter is not None and args.model is None:
        raise SystemExit("--drafter needs the --model it drafts for")
    if args.model is not None and args.drafter is None:  # e.g. scripts/bench.sh --model (no drafter)
        print(f"{args.model.name}: no --drafter given, nothing to compare (random models run without --model)")
        return 0

    import llama_cpp  # noqa: F401  before numpy (app/engine/__init__.py)

    from app.engine.engine import Engine, EngineConfig
    from app.engine.messages import Message

    cfg = EngineConfig(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.gpu_layers,
                       n_draft=args.n_draft)
    msgs = [Message.user(PROMPT)]
    with tempfile.TemporaryDirectory(prefix="minutely-bench-spec-") as d:
        if args.model is not None:
            files = {"model": args.model, "drafter": args.drafter}
            kind = "real"
        else:
            files = _random_models(Path(d), args.size)
            kind = f"random ({args.size})"
        engines = {"main": Engine(files["model"], None, cfg, drafter=files["drafter"])}
        if "tied" in files:
            engines["tied"] = Engine(files["tied"], None, cfg, drafter=files["echo"])
        # name -> (engine, use the drafter)
        runs = {"plain": ("main", False), "drafter": ("main", True)}
        if "tied" in engines:
            runs |= {"plain (repeating model)": ("tied", False), "echo drafter": ("tied", True)}
        texts: dict[str, str] = {}
        stats: dict[str, dict] = {}

        def run(name: str) -> float:
            key, draft = runs[name]
            e = engines[key]
            e.reset()
            r = e.chat(msgs, max_tokens=args.tokens, ignore_eos=True, draft=draft)
            assert r.generated_tokens == args.tokens, r
            texts[name] = r.text
            stats[name] = {"steps_per_token": round(r.steps_per_token, 3),
                           "acceptance": round(r.acceptance, 3)}
            return r.generate_seconds

        for name in runs:  # warm-up
            run(name)
        times: dict[str, list[float]] = {k: [] for k in runs}
        order = list(runs)
        for i in range(args.rounds):
            for name in order[i % len(order):] + order[:i % len(order)]:
                times[name].append(run(name))
        for e in engines.values():
            e.close()
    tps = {k: args.tokens / median(v) for k, v in times.items()}
    res: dict = {"models": kind, "tokens": args.tokens, "rounds": args.rounds, "threads": args.threads,
                 "gpu_layers": args.gpu_layers, "n_draft": args.n_draft,
                 "tokens_per_s": {k: round(v, 1) for k, v in tps.items()}, "decoding": stats,
                 "drafter_vs_plain": round(tps["drafter"] / tps["plain"], 3),
                 "same_text": texts["drafter"] == texts["plain"]}
    if "echo drafter" in tps:
        res["echo_vs_plain"] = round(tps["echo drafter"] / tps["plain (repeating model)"], 3)
        res["echo_same_text"] = texts["echo drafter"] == texts["plain (repeating model)"]
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{kind} models: {args.tokens} tokens, {args.threads} thread(s), GPU layers {args.gpu_layers}, "
          f"{args.n_draft} proposals per step, median of {args.rounds} interleaved rounds")
    for k in runs:
        s = stats[k]
        print(f"  {k:<24} {tps[k]:8.1f} tok/s   {s['steps_per_token']:.2f} model decodes/token"
              f"   acceptance {s['acceptance']:.0%}")
    print(f"  drafter / plain = {res['drafter_vs_plain']:.2f}x (same text: {res['same_text']})")
    if "echo_vs_plain" in res:
        print(f"  echo drafter / plain on the repeating model = {res['echo_vs_plain']:.2f}x "
              f"(same text: {res['echo_same_text']})")
    if kind != "real":
        print("  random weights: the drafter's proposals are noise, so 'drafter / plain' is the cost of the "
              "machinery; the real speed-up needs the real drafter (--model/--drafter, ideally on a GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
