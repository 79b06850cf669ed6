"""Time to first token of a follow-up question vs the first, over a long transcript.

A ~8,000-token meeting transcript is asked a question, then a follow-up in the
same conversation. With prefix reuse the follow-up evaluates only its new
tokens. Both are measured in the same run, repeated; goal: follow-up <= 10%.

The follow-up's new turn (the previous answer, the new question and their turn
markers) is what the second prompt adds to the first: ``followup_new_tokens``.
With prefix reuse the follow-up evaluates at most that many tokens; its length
depends on the answer, so the check compares with it, not with a fixed number.

    python bench/prefix_reuse.py [--model M.gguf] [--transcript-tokens 8000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402


def make_transcript(approx_words: int) -> str:
    names = ["Ana", "Ben", "Chloe", "Dev", "Eli"]
    topics = ["the budget", "the launch date", "hiring", "the customer survey", "the roadmap",
              "the office move", "security review", "the quarterly report"]
    lines, words, i = [], 0, 0
    while words < approx_words:
        line = (f"[{i // 3 // 60:02d}:{i * 20 % 60:02d}] {names[i % 5]}: about {topics[i % 8]}, "
                f"I think we should look at item {i} again before we decide anything final.")
        lines.append(line)
        words += len(line.split())
        i += 1
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--transcript-tokens", type=int, default=8000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from app.engine.engine import Engine, EngineConfig
    from app.engine.messages import Message

    model = reference_model(args.model)
    engine = Engine(model, None, EngineConfig(n_ctx=args.transcript_tokens + 2048, n_threads=args.threads),
                    chat_template=GEMMA_TEMPLATE, require_arch=None)
    # size the transcript to the requested token count with the model's tokenizer
    text = make_transcript(args.transcript_tokens // 2)
    ratio = args.transcript_tokens / engine.count_tokens([Message.user(text)])
    text = make_transcript(int(args.transcript_tokens // 2 * ratio))
    ctx = Message.user("Here is the transcript of our meeting:\n" + text)
    first, follow, n_first, n_follow_eval, n_new, n_follow = [], [], 0, 0, 0, 0
    for _ in range(args.rounds):
        engine.reset()
        q1 = [ctx, Message.assistant("I have read it."), Message.user("What did we decide about the budget?")]
        r1 = engine.chat(q1, max_tokens=16)
        q2 = q1 + [Message.assistant(r1.text), Message.user("And who will follow up on hiring?")]
        r2 = engine.chat(q2, max_tokens=16)
        first.append(r1.time_to_first_token)
        follow.append(r2.time_to_first_token)
        n_first, n_follow_eval = r1.evaluated_tokens, r2.evaluated_tokens
        # q1's prompt is a prefix of q2's (same template, same messages first): the rest is the new turn
        n_follow, n_new = r2.prompt_tokens, r2.prompt_tokens - r1.prompt_tokens
    engine.close()
    res = {"model": Path(model).name, "prompt_tokens": n_first,
           "followup_evaluated_tokens": n_follow_eval, "followup_new_tokens": n_new,
           "followup_prompt_tokens": n_follow,
           "ttft_first_s": round(median(first), 3), "ttft_followup_s": round(median(follow), 4),
           "ratio": round(median(follow) / median(first), 4)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['model']}: transcript prompt of {n_first} tokens, {args.threads} thread(s), "
              f"median of {args.rounds}")
        print(f"  first question   TTFT {res['ttft_first_s']:.3f} s ({n_first} tokens evaluated)")
        print(f"  follow-up        TTFT {res['ttft_followup_s']:.4f} s ({n_follow_eval} tokens evaluated "
              f"of {n_follow}; the new turn is {n_new})")
        print(f"  follow-up / first = {res['ratio']:.1%}  (goal <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
