"""The Engine with the tiny Gemma 4 through real llama-cpp-python and mtmd."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from PIL import Image as PILImage

from app.engine.engine import Engine
from app.engine.errors import ContextOverflow, EngineError
from app.engine.messages import Audio, Image, Message
from app.media.audio import MediaError, write_wav
from tests.support.audio import tone
from tests.support.engine import engine_config
from tests.support.meetings import transcript


def test_loads_with_audio_and_vision(engine):
    assert engine.supports_audio and engine.supports_vision
    assert engine.audio_sample_rate == 16000


@pytest.mark.parametrize("seconds", [1.0, 2.5, 7.3, 30.0])
def test_audio_is_25_tokens_per_second(engine, seconds):
    r = engine.chat([Message.user("Transcribe this.", Audio(tone(seconds)))], max_tokens=1)
    assert r.media_tokens == [math.ceil(seconds * 16000 / 640)]


def test_audio_file_part_is_decoded(engine, tmp_path):
    wav = write_wav(tmp_path / "a.wav", tone(2.0))
    r = engine.chat([Message.user(Audio(path=wav), "What is said?")], max_tokens=1)
    assert r.media_tokens == [50]


def test_broken_audio_file_is_one_clear_error(engine, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3\x03\x00not really an mp3" * 10)
    with pytest.raises(MediaError) as e:
        engine.chat([Message.user(Audio(path=bad), "?")], max_tokens=1)
    assert "broken.mp3" in str(e.value) and "\n" not in str(e.value)


def test_empty_audio_is_refused(engine):
    with pytest.raises(EngineError, match="empty"):
        engine.chat([Message.user(Audio(np.zeros(0, np.float32)), "?")], max_tokens=1)


def test_image_default_budget_and_cap(engine):
    big = PILImage.new("RGB", (1920, 1080), "white")
    r = engine.chat([Message.user(Image(big), "Describe.")], max_tokens=1)
    assert 800 <= r.media_tokens[0] <= 1120


@pytest.mark.parametrize("budget", [140, 280, 560])
def test_image_token_budget_is_honoured(engine, budget):
    big = PILImage.new("RGB", (1920, 1080), "white")
    r = engine.chat([Message.user(Image(big, max_tokens=budget), "Describe.")], max_tokens=1)
    n = r.media_tokens[0]
    assert 0.6 * budget <= n <= budget
    # the per-call option does the same for every image without its own budget
    r2 = engine.chat([Message.user(Image(big), "Describe.")], max_tokens=1, image_tokens=budget)
    assert r2.media_tokens == [n]


def test_image_file_part_and_bad_image(engine, tmp_path):
    p = tmp_path / "shot.png"
    PILImage.new("RGB", (320, 240), "blue").save(p)
    r = engine.chat([Message.user(Image(path=p), "What is on the screen?")], max_tokens=1)
    assert len(r.media_tokens) == 1 and r.media_tokens[0] >= 70
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(EngineError, match="bad.png"):
        engine.chat([Message.user(Image(path=bad), "?")], max_tokens=1)


def test_streams_piece_by_piece(engine):
    s = engine.stream([Message.user("Tell me about the meeting.")], max_tokens=24, ignore_eos=True)
    pieces = list(s)
    r = s.reply
    assert len(pieces) >= 10  # arrives as it is decoded, not in one block
    assert "".join(pieces) == r.text
    assert r.generated_tokens == 24 and r.finish_reason == "length"


def test_max_tokens_and_determinism(engine):
    msgs = [Message.user("Summarize the budget talk.")]
    a = engine.chat(msgs, max_tokens=7)
    b = engine.chat(msgs, max_tokens=7)
    assert a.generated_tokens == 7 and a.text == b.text
    s1 = engine.chat(msgs, max_tokens=12, temperature=1.0, seed=42)
    s2 = engine.chat(msgs, max_tokens=12, temperature=1.0, seed=42)
    s3 = engine.chat(msgs, max_tokens=12, temperature=1.0, seed=7)
    assert s1.text == s2.text
    assert s1.text != s3.text


def test_stop_strings_end_the_answer_before_them(engine):
    msgs = [Message.user("Write the minutes.")]
    full = engine.chat(msgs, max_tokens=40).text
    # choose a stop string that occurs in the greedy answer, past its start
    stop = next(full[i:i + 3] for i in range(5, len(full) - 3) if full[i:i + 3].strip() == full[i:i + 3])
    cut = full.index(stop)
    s = engine.stream(msgs, max_tokens=40, stop=[stop])
    pieces = list(s)
    assert s.reply.text == full[:cut] == "".join(pieces)
    assert s.reply.finish_reason == "stop"


def test_json_schema_output_is_valid(engine):
    schema = {"type": "object",
              "properties": {"decision": {"enum": ["approve", "reject", "defer"]},
                             "urgent": {"type": "boolean"},
                             "owners": {"type": "array", "items": {"enum": ["Ana", "Ben"]},
                                        "maxItems": 2}},
              "required": ["decision", "urgent", "owners"]}
    for seed in range(3):
        r = engine.chat([Message.user("Decide.")], max_tokens=200, temperature=0.8, seed=seed,
                        json_schema=schema)
        data = r.json()
        assert data["decision"] in {"approve", "reject", "defer"}
        assert isinstance(data["urgent"], bool)
        assert set(data["owners"]) <= {"Ana", "Ben"}


def test_cancel_from_another_thread_stops_within_one_token(engine):
    seen = threading.Event()
    canceller = threading.Thread(target=lambda: (seen.wait(10), engine.cancel()))
    canceller.start()
    s = engine.stream([Message.user("Talk for a long time.")], max_tokens=5000, ignore_eos=True)
    at_cancel = None
    for _ in s:
        if at_cancel is None and s.live.generated_tokens >= 5:
            seen.set()
            canceller.join()  # cancel() has returned: from here, at most one more token
            at_cancel = s.live.generated_tokens
    r = s.reply
    assert r.finish_reason == "cancelled"
    assert at_cancel <= r.generated_tokens <= at_cancel + 1
    # and the engine is still usable, with the right answer
    after = engine.chat([Message.user("Summarize the budget talk.")], max_tokens=7)
    engine.reset()
    fresh = engine.chat([Message.user("Summarize the budget talk.")], max_tokens=7)
    assert after.text == fresh.text


def test_ignore_eos_gives_exactly_max_tokens(engine):
    r = engine.chat([Message.user("Hi")], max_tokens=300, ignore_eos=True)
    assert r.generated_tokens == 300 and r.finish_reason == "length"


def test_prefix_reuse_evaluates_only_the_new_question(engine):
    engine.reset()
    text = transcript(60)
    sys_msg = Message.system("You answer questions about this meeting.\n" + text)
    q1 = [sys_msg, Message.user("What was decided about the budget?")]
    r1 = engine.chat(q1, max_tokens=8)
    assert r1.reused_tokens == 0 and r1.evaluated_tokens == r1.prompt_tokens > 1500
    q2 = q1 + [Message.assistant(r1.text), Message.user("And who owns the report?")]
    r2 = engine.chat(q2, max_tokens=8)
    # all but the generation prompt, which the template renders differently in history
    assert r2.reused_tokens >= r1.prompt_tokens - 16
    assert r2.evaluated_tokens < 0.05 * r2.prompt_tokens
    # the reused cache gives exactly what a full evaluation gives
    engine.reset()
    r3 = engine.chat(q2, max_tokens=8)
    assert r3.reused_tokens == 0 and r3.text == r2.text


def test_prefix_reuse_with_media_and_a_changed_prefix(engine):
    engine.reset()
    audio = Audio(tone(3.0))
    img = Image(PILImage.new("RGB", (320, 240), "green"))
    base = [Message.user(img, audio, "Transcribe.")]
    r1 = engine.chat(base, max_tokens=4)
    r2 = engine.chat(base + [Message.assistant(r1.text), Message.user("Again?")], max_tokens=4)
    assert r2.reused_tokens >= r1.prompt_tokens - 16  # media chunks are reused too
    other = [Message.user(Image(PILImage.new("RGB", (320, 240), "red")), audio, "Transcribe.")]
    r3 = engine.chat(other, max_tokens=4)
    assert r3.reused_tokens < 10  # a different image invalidates everything after it


def test_identical_prompt_twice_gives_the_same_answer(engine):
    msgs = [Message.user("Who spoke first?")]
    a = engine.chat(msgs, max_tokens=6)
    b = engine.chat(msgs, max_tokens=6)
    assert b.evaluated_tokens == 1 and a.text == b.text


def test_context_overflow_is_a_clear_error(tiny_model):
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(256)) as e:
        with pytest.raises(ContextOverflow, match="context"):
            e.chat([Message.user(transcript(40))], max_tokens=4)
        assert e.chat([Message.user("short")], max_tokens=2).generated_tokens == 2


def test_generation_stops_at_the_end_of_the_context(tiny_model):
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(256)) as e:
        r = e.chat([Message.user("go")], max_tokens=1000, ignore_eos=True)
        assert r.finish_reason == "length" and r.prompt_tokens + r.generated_tokens <= 256


def test_text_only_engine_refuses_media(tiny_model):
    with Engine(tiny_model.model, None, engine_config(512)) as e:
        assert e.chat([Message.user("hi")], max_tokens=3).generated_tokens == 3
        with pytest.raises(EngineError, match="mmproj"):
            e.chat([Message.user(Audio(tone(1.0)), "hi")], max_tokens=3)


def test_message_dicts_and_roles(engine):
    r = engine.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                    max_tokens=3)
    assert r.generated_tokens == 3
    with pytest.raises(EngineError, match="role"):
        Message("robot", ["hi"])
    with pytest.raises(EngineError, match="no messages"):
        engine.chat([], max_tokens=3)


def test_batch_of_conversations_matches_one_by_one(engine):
    convs = [[Message.user("Transcribe this audio.", Audio(tone(1 + i * 0.7, 180 + 40 * i)))] for i in range(6)]
    batch = engine.chat_batch(convs, max_tokens=24, ignore_eos=True)
    single = [engine.chat(c, max_tokens=24, ignore_eos=True) for c in convs]
    assert [r.generated_tokens for r in batch] == [24] * 6
    assert [r.media_tokens for r in batch] == [r.media_tokens for r in single]
    # the same greedy answers (a wrong sequence or position would change all of them;
    # batched float sums may flip a rare near-tie of the random model)
    assert sum(a.text == b.text for a, b in zip(batch, single)) >= 5
    # the shared instruction was evaluated once and copied to the other sequences
    assert batch[0].reused_tokens == 0 and all(r.reused_tokens > 5 for r in batch[1:4])
    # and the engine's chat still works afterwards
    assert engine.chat([Message.user("hi")], max_tokens=3, ignore_eos=True).generated_tokens == 3


def test_batch_too_big_for_the_context_is_split(tiny_model):
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(1024)) as e:
        convs = [[Message.user("Transcribe.", Audio(tone(6.0, 200 + 30 * i)))] for i in range(4)]
        rs = e.chat_batch(convs, max_tokens=60, ignore_eos=True)  # 4 x ~230 cells > 1024
        assert [r.generated_tokens for r in rs] == [60] * 4
        with pytest.raises(ContextOverflow):
            e.chat_batch([[Message.user("x", Audio(tone(60.0)))]], max_tokens=10)


def test_repeat_penalty_generates(engine):
    """A repeat penalty other than 1.0 goes through llama.cpp's penalties sampler."""
    from app.engine.messages import Message

    engine.reset()
    r = engine.chat([Message.user("Say something.")], max_tokens=12, repeat_penalty=1.3, seed=1)
    assert r.generated_tokens == 12 or r.finish_reason == "stop"
