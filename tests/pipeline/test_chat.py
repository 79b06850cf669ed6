"""Questions about a meeting: the session chat, citations, thinking, image questions.

Real parts: the tiny Gemma 4 through llama-cpp-python, a real SQLite library.
"""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from app.engine.engine import Engine
from app.engine.errors import EngineError
from app.engine.messages import Image, Text
from app.library import Library
from app.pipeline.chat import (
    SessionChat,
    ThinkingUnsupported,
    ThoughtSplitter,
    ask_image,
    find_citations,
    supports_thinking,
)
from app.pipeline.context import text_counter
from tests.support.engine import engine_config

NAMES = ["Ana", "Ben", "Chloe"]


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def meeting(lib, n_lines: int = 60, step: float = 6.0, title: str = "Budget review") -> int:
    s = lib.create_session(title, "recording")
    lib.add_segments(s.id, [{"start": i * step, "end": i * step + step - 1, "speaker": NAMES[i % 3],
                             "text": f"point {i}: we talk about the budget and the launch"} for i in range(n_lines)])
    return s.id


class Spy:
    """The real engine, remembering the messages it was sent."""

    def __init__(self, engine):
        self._e = engine
        self.sent = []

    def __getattr__(self, name):
        return getattr(self._e, name)

    def stream(self, messages, *a, **kw):
        self.sent.append(list(messages))
        return self._e.stream(messages, *a, **kw)


# -- citations ----------------------------------------------------------------
def test_citations_map_to_seconds_and_point_into_the_text():
    text = ("Ana agreed [03:07]; later [1:02:03] and [12:34-13:10], also (05:00) and [10:00, 11:30]. "
            "Not [2023], not [12:99], not 03:07 without brackets.")
    cs = find_citations(text)
    assert [c.seconds for c in cs] == [187, 3723, 754, 300, 600, 690]
    assert cs[2].end == 790 and cs[0].end is None
    for c in cs:
        assert text[c.start_char:c.end_char] == c.label
    assert cs[1].label == "1:02:03" and cs[2].label == "12:34-13:10"
    # past the end of the recording: the model made it up
    assert [c.seconds for c in find_citations(text, duration=700)] == [187, 300, 600, 690]


# -- thinking -----------------------------------------------------------------
@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7])
def test_thought_splitter_separates_thought_from_answer(cut):
    text = "<|channel>thought\nthe budget was at [02:00]<channel|>It was cut [02:00]."
    got = {"a": "", "t": ""}
    sp = ThoughtSplitter(lambda s: got.__setitem__("a", got["a"] + s),
                         lambda s: got.__setitem__("t", got["t"] + s))
    for i in range(0, len(text), cut):
        sp.feed(text[i:i + cut])
    sp.finish()
    assert sp.answer == got["a"] == "It was cut [02:00]."
    assert sp.thought == got["t"] == "the budget was at [02:00]"
    plain = ThoughtSplitter()
    for piece in ["<", "b>bold", " text"]:
        plain.feed(piece)
    plain.finish()
    assert plain.answer == "<b>bold text" and plain.thought == ""


def test_think_harder_only_where_the_template_has_it(engine, tiny_model, lib):
    sid = meeting(lib, 10)
    assert supports_thinking(engine)  # the tiny template has an enable_thinking switch
    ans = SessionChat(lib, engine, sid).ask("Why?", think=True, max_tokens=8)
    assert ans.reply.generated_tokens > 0
    no_think = "{% for m in messages %}<|turn>{{ m['role'] }}\n{{ m['content'] }}<turn|>\n{% endfor %}<|turn>model\n"
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(2048), chat_template=no_think) as plain:
        assert not supports_thinking(plain)
        with pytest.raises(ThinkingUnsupported, match="no thinking mode"):
            SessionChat(lib, plain, sid).ask("Why?", think=True)
    assert len(lib.chat(sid)) == 2  # the refused question stored nothing


# -- the session chat ------------------------------------------------------------
def test_follow_up_evaluates_only_the_new_turn_and_the_chat_is_stored(engine, lib):
    sid = meeting(lib, 120)
    engine.reset()
    chat = SessionChat(lib, engine, sid)
    assert chat.whole
    a1 = chat.ask("What did we decide about the budget?", max_tokens=12)
    assert a1.reply.evaluated_tokens == a1.reply.prompt_tokens > 2000
    q2 = "And who talked about the launch?"
    a2 = chat.ask(q2, max_tokens=12)
    count = text_counter(engine)
    # the previous answer as history, the question, and the turn markers around them (~40 tiny tokens)
    new_turn = count(a1.text) + count(q2) + 40
    assert a2.reply.evaluated_tokens <= new_turn < a2.reply.prompt_tokens // 20
    # all of the first prompt but the empty thought channel the template puts after "<|turn>model"
    assert a2.reply.reused_tokens >= a1.reply.prompt_tokens - 16
    stored = lib.chat(sid)
    assert [(m.role, m.content) for m in stored] == [("user", "What did we decide about the budget?"),
                                                     ("assistant", a1.text), ("user", q2),
                                                     ("assistant", a2.text)]
    assert a2.user_message_id == stored[2].id and a2.assistant_message_id == stored[3].id
    # a new chat object (the app restarted) sends the same history, so the prefix still matches
    again = SessionChat(lib.connect(), engine, sid)
    msgs, _ = again.messages_for("Anything else?")
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "[00:06] Ben: point 1" in msgs[0].text and msgs[3].text == q2
    a3 = again.ask("Anything else?", max_tokens=4)
    assert a3.reply.evaluated_tokens <= count(a2.text) + count("Anything else?") + 40


def test_screenshots_pinned_and_attached_are_in_the_context(engine, lib, tmp_path):
    sid = meeting(lib, 20)
    shot = lib.media_dir(sid) / "shot.png"
    PILImage.new("RGB", (640, 360), "orange").save(shot)
    m = lib.add_media(sid, shot, "screenshot", 42.0, width=640, height=360)
    dropped = tmp_path / "chart.png"
    PILImage.new("RGB", (320, 240), "blue").save(dropped)
    spy = Spy(engine)
    chat = SessionChat(lib, spy, sid, pinned=[m.id], image_tokens=140)
    ans = chat.ask("What is on the chart?", images=[dropped], max_tokens=6)
    sent = spy.sent[-1]
    images = [p for msg in sent for p in msg.parts if isinstance(p, Image)]
    assert [p.path for p in images] == [str(lib.absolute(m)), str(lib.absolute(lib.media(sid, "image")[0]))]
    assert "Screenshot at [00:42]:" in [p.text for p in sent[1].parts if isinstance(p, Text)]
    assert len(ans.reply.media_tokens) == 2 and all(n <= 140 for n in ans.reply.media_tokens)
    # the dropped image was copied into the session and the question refers to it
    (img_row,) = lib.media(sid, "image")
    assert lib.absolute(img_row).read_bytes() == dropped.read_bytes()
    assert lib.chat(sid)[0].attachments == [{"media_id": img_row.id}]
    # the next question still shows it (same history, same prefix)
    ans2 = chat.ask("And the colour?", max_tokens=4)
    assert len(ans2.reply.media_tokens) == 2 and ans2.reply.evaluated_tokens < 60
    with pytest.raises(EngineError, match="no media item"):
        chat.ask("?", images=[99999])
    with pytest.raises(EngineError, match="image not found"):
        chat.ask("?", images=[tmp_path / "none.png"])


def test_a_long_meeting_sends_the_excerpt_the_question_is_about(tiny_model, lib):
    sid = meeting(lib, 400, step=5.0)  # 33 minutes, far more than a 2,048-token context holds
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(2048)) as small:
        chat = SessionChat(lib, small, sid, answer_reserve=256)
        assert not chat.whole
        ans = chat.ask("What was said at 20:00?", max_tokens=8)
        a, b = ans.excerpt
        assert a < 1200 < b and b - a < 600
        text = chat.messages_for("x", excerpt=(a, b))[0][-1].text
        assert "[20:00]" in text and "[00:00]" not in text
        assert lib.chat(sid)[0].attachments == [{"excerpt": [a, b]}]
        assert ans.reply.prompt_tokens <= 2048
        # the follow-up re-renders the stored excerpt identically: only the new turn is evaluated
        ans2 = chat.ask("Who spoke then?", max_tokens=4)
        assert ans2.reply.reused_tokens > ans.reply.prompt_tokens // 2


def test_a_cancelled_answer_is_kept_as_far_as_it_got(engine, lib):
    sid = meeting(lib, 10)
    chat = SessionChat(lib, engine, sid)
    ans = chat.ask("Tell me everything.", max_tokens=200, on_piece=lambda s: engine.cancel())
    assert ans.finish_reason == "cancelled"
    user, assistant = lib.chat(sid)
    assert assistant.content == ans.text and {"finish": "cancelled"} in assistant.attachments


def test_unknown_session_and_empty_question(engine, lib):
    from app.library.db import NotFound

    with pytest.raises(NotFound):
        SessionChat(lib, engine, 12345)
    sid = meeting(lib, 3)
    with pytest.raises(EngineError, match="empty"):
        SessionChat(lib, engine, sid).ask("   ")


# -- one image --------------------------------------------------------------------
def test_image_question_with_the_transcript_around_its_time(engine, lib, tmp_path):
    sid = meeting(lib, 200, step=6.0)  # 20 minutes
    img = tmp_path / "slide.png"
    PILImage.new("RGB", (800, 600), "green").save(img)
    spy = Spy(engine)
    ans = ask_image(spy, "What does the slide show?", img, lib=lib, session_id=sid, offset=600.0,
                    window=120.0, max_tokens=6, image_tokens=200)
    system, user = spy.sent[-1]
    transcript = next(p.text for p in user.parts if isinstance(p, Text) and p.text.startswith("Transcript"))
    assert "at [10:00]" in transcript and "[09:00]" in transcript and "[10:54]" in transcript
    assert "[08:54]" not in transcript and "[11:06]" not in transcript
    assert isinstance(user.parts[1], Image) and user.parts[-1].text == "What does the slide show?"
    assert ans.reply.media_tokens and ans.reply.media_tokens[0] <= 200
    # the image alone: no transcript, nothing stored
    spy.sent.clear()
    ask_image(spy, "What colour?", img, max_tokens=4)
    assert len(spy.sent[-1][1].parts) == 2 and lib.chat(sid) == []
