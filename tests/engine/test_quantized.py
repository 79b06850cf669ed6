"""The engine on a real quantized model: Gemma 3 270M Q4_K_M (from PyPI).

The tiny random Gemma 4 is F16 and never reaches llama.cpp's quantized kernels
(k-quant dot products, the repacked AVX2/AVX-512 GEMM, AMX), which is where a
build for the wrong CPU dies. These run them in the default suite: generation,
prefix reuse, JSON-schema output and cancel, in this process and in the model
process the app uses.
"""

from __future__ import annotations

import threading

import pytest

from tests.support.engine import engine_config

pytestmark = pytest.mark.slow

TRANSCRIPT = " ".join(
    f"[{i // 6:02d}:{i % 6 * 10:02d}] {who}: {text}" for i, (who, text) in enumerate([
        ("Maria", "Good morning. Today we decide where the new office goes."),
        ("Tom", "I visited two places, one in Lisbon and one in Porto."),
        ("Maria", "Which one is cheaper?"),
        ("Tom", "Lisbon is about thirty percent cheaper, and the lease is flexible."),
        ("Priya", "Porto has better trains, but the rent is too high for our budget."),
        ("Maria", "Then we take Lisbon. Tom signs the lease by Friday."),
        ("Tom", "I will sign it by Friday and send the contract to everyone."),
        ("Priya", "I will book the movers for the first week of March."),
    ] * 3))


@pytest.fixture(scope="module")
def g3():
    from app.engine.engine import Engine
    from bench.common import GEMMA_TEMPLATE, reference_model

    with Engine(reference_model(None), None, engine_config(4096), chat_template=GEMMA_TEMPLATE,
                require_arch=None) as e:
        yield e


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": f"Meeting transcript:\n{TRANSCRIPT}\n\n{question}"}]


# Gemma 3 270M from PyPI is the pretrained (not instruction-tuned) model: it continues text.
PLAIN = "{{ bos_token }}{{ messages[-1]['content'] }}"


@pytest.mark.parametrize("start, then", [("Monday, Tuesday, Wednesday,", "thursday"),
                                         ("January, February, March,", "april"),
                                         ("Paris is the capital of", "france")])
def test_quantized_kernels_compute_the_right_numbers(start, then):
    """Wrong arithmetic in a quantized kernel (not only a crash) would lose these continuations."""
    from app.engine.engine import Engine
    from bench.common import reference_model

    with Engine(reference_model(None), None, engine_config(1024), chat_template=PLAIN,
                require_arch=None) as e:
        r = e.chat([{"role": "user", "content": start}], max_tokens=4)
    assert r.text.strip().casefold().startswith(then), r.text


def test_a_follow_up_reuses_the_transcript_and_evaluates_only_what_is_new(g3):
    g3.reset()
    first = ask("Which city did they choose for the office?")
    r1 = g3.chat(first, max_tokens=24)
    assert r1.reused_tokens == 0 and r1.evaluated_tokens == r1.prompt_tokens > 300
    follow = first + [{"role": "assistant", "content": r1.text},
                      {"role": "user", "content": "Who signs the lease?"}]
    new_turn = g3.count_tokens(follow) - g3.count_tokens(first)  # the answer + the new question
    r2 = g3.chat(follow, max_tokens=16)
    assert r2.reused_tokens >= r1.prompt_tokens - 1  # the whole transcript came from the cache
    assert r2.evaluated_tokens == r2.prompt_tokens - r2.reused_tokens
    assert r2.evaluated_tokens <= new_turn + 1, (r2.evaluated_tokens, new_turn)
    assert r2.generated_tokens >= 1


def test_json_schema_output_parses_on_a_quantized_model(g3):
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "owner": {"type": "string"}},
              "required": ["city", "owner"]}
    r = g3.chat(ask("Answer in JSON: the chosen city and who signs the lease."), max_tokens=60,
                json_schema=schema)
    data = r.json()
    assert set(data) == {"city", "owner"} and all(isinstance(v, str) for v in data.values())


def test_cancel_stops_a_quantized_model_within_one_token(g3):
    seen = threading.Event()
    canceller = threading.Thread(target=lambda: (seen.wait(30), g3.cancel()))
    canceller.start()
    s = g3.stream(ask("Write a long story about the office move."), max_tokens=200, ignore_eos=True)
    at_cancel = None
    for _ in s:
        if at_cancel is None and s.live.generated_tokens >= 5:
            seen.set()
            canceller.join()
            at_cancel = s.live.generated_tokens
    r = s.reply
    assert r.finish_reason == "cancelled"
    assert at_cancel <= r.generated_tokens <= at_cancel + 1


def test_the_model_process_runs_the_quantized_model_with_the_checked_cpu_code():
    from app.engine import cpucheck
    from app.engine.host import EngineHost
    from bench.common import GEMMA_TEMPLATE, reference_model

    with EngineHost(reference_model(None), None, engine_config(2048), chat_template=GEMMA_TEMPLATE,
                    require_arch=None) as host:
        r = host.chat([{"role": "user", "content": "Say hello."}], max_tokens=8, ignore_eos=True)
        assert r.generated_tokens == 8 and host.restarts == 0
    assert cpucheck.check().ok
