"""`minutely serve` over loopback: requests/s and first-token latency of a short prompt, and a
repeated long prompt with vs without prefix reuse, side by side in one run.

The server is the real one (Starlette + uvicorn on 127.0.0.1, the model in an EngineHost child
process), driven by the official `openai` client. "Without reuse" sends the same long prompt with
a different first line each time, so nothing of it is in the KV cache; "with reuse" sends the
identical prompt again, so the engine's sequence-0 prefix cache skips all but its last token.

    python bench/serve.py [--model M.gguf] [--long-tokens 4000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402


def first_token(client, model: str, messages: list, max_tokens: int = 8) -> tuple[float, float, dict]:
    """(seconds to the first text piece, seconds in all, usage) of one streamed request."""
    t0 = time.perf_counter()
    ttft = None
    usage: dict = {}
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                temperature=0, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content and ttft is None:
            ttft = time.perf_counter() - t0
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total, usage


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--long-tokens", type=int, default=4000, help="size of the long prompt (about)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--short-requests", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import openai

    from app.engine.config import EngineConfig
    from app.engine.host import EngineHost
    from app.serve.gate import EngineGate
    from app.serve.server import Server

    model = reference_model(args.model)
    tiny = args.model is not None
    host = EngineHost(model, None, EngineConfig(n_ctx=args.long_tokens + 2048, n_threads=args.threads),
                      chat_template=None if tiny else GEMMA_TEMPLATE, require_arch=None)
    host.start()
    gate = EngineGate(host, model)
    server = Server(gate, "127.0.0.1", 0)
    server.start()
    try:
        while not server.started:
            time.sleep(0.01)
        client = openai.OpenAI(base_url=server.url, api_key="local", max_retries=0, timeout=600)
        mid = gate.model_id()
        short = [{"role": "user", "content": "Say hello in five words."}]
        first_token(client, mid, short)  # warm up
        http_s, direct_s = [], []  # the same requests over HTTP and straight to the EngineHost, interleaved
        for i in range(args.short_requests):
            msgs = [{"role": "user", "content": f"Say hello to person {i}."}]
            t0 = time.perf_counter()
            client.chat.completions.create(model=mid, max_tokens=8, temperature=0, messages=msgs)
            http_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            host.chat([{"role": "user", "content": f"Say hello to someone, {i}."}], max_tokens=8)
            direct_s.append(time.perf_counter() - t0)
        rps = len(http_s) / sum(http_s)
        direct_rps = len(direct_s) / sum(direct_s)
        short_ttft = [first_token(client, mid, [{"role": "user", "content": f"Name a colour ({i})."}])[0]
                      for i in range(args.rounds)]

        from app.engine.messages import Message

        def make_body(lines: int) -> str:
            return " ".join(f"Line {i}: the budget for item {i} was approved after a long discussion."
                            for i in range(lines))

        probe = args.long_tokens // 16  # sized to --long-tokens with the model's own tokenizer
        body = make_body(max(1, int(probe * args.long_tokens / host.count_tokens([Message.user(make_body(probe))]))))

        def long_msgs(first_line: str) -> list:
            return [{"role": "user", "content": first_line + "\n" + body + "\nSummarize in one line."}]

        cold, warm, cold_eval, warm_cached, prompt_tokens = [], [], [], [], 0
        for r in range(args.rounds):
            ttft, _, u = first_token(client, mid, long_msgs(f"Meeting number {r} of many."))  # new first line
            cold.append(ttft)
            cold_eval.append(u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"])
            prompt_tokens = u["prompt_tokens"]
            ttft, _, u = first_token(client, mid, long_msgs(f"Meeting number {r} of many."))  # identical again
            warm.append(ttft)
            warm_cached.append(u["prompt_tokens_details"]["cached_tokens"])
        out = {
            "model": mid,
            "short_requests_per_s": round(rps, 2),
            "short_direct_requests_per_s": round(direct_rps, 2),  # no HTTP: what the server adds
            "short_first_token_ms": round(median(short_ttft) * 1000, 1),
            "long_prompt_tokens": prompt_tokens,
            "long_first_token_ms": {"without_reuse": round(median(cold) * 1000, 1),
                                    "with_reuse": round(median(warm) * 1000, 1)},
            "long_evaluated_tokens": {"without_reuse": int(statistics.median(cold_eval)),
                                      "with_reuse": prompt_tokens - int(statistics.median(warm_cached))},
            "reuse_speedup": round(median(cold) / median(warm), 1),
        }
    finally:
        server.stop()
        gate.close()
        host.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"model {out['model']}")
        print(f"short prompt: {out['short_requests_per_s']} requests/s over HTTP (8 tokens each; "
              f"{out['short_direct_requests_per_s']}/s straight to the model process), "
              f"first token {out['short_first_token_ms']} ms")
        print(f"long prompt ({prompt_tokens} tokens), first token: without reuse "
              f"{out['long_first_token_ms']['without_reuse']} ms "
              f"({out['long_evaluated_tokens']['without_reuse']} evaluated), with reuse "
              f"{out['long_first_token_ms']['with_reuse']} ms ({out['long_evaluated_tokens']['with_reuse']} "
              f"evaluated): {out['reuse_speedup']}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
