"""`python main.py ask --session / --video / --all-sessions`, run as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from app.library import Library
from tests.support.cli import assert_one_line_error, model_args, run
from tests.support.media_factory import make_video


@pytest.fixture
def library(_private_home):
    with Library.open(_private_home) as lib:
        s = lib.create_session("Budget review", "recording")
        lib.add_segments(s.id, [{"start": i * 5.0, "end": i * 5 + 4.0, "speaker": "Ana",
                                 "text": f"the budget line {i}"} for i in range(20)])
        yield lib, s.id


def test_session_question_streams_and_is_stored(tiny_model, library):
    lib, sid = library
    p = run("ask", "--session", str(sid), "What about the budget?", "--max-tokens", "8", "--stats",
            *model_args(tiny_model), guard=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() and "prompt " in p.stderr and "cited:" in p.stderr
    with Library.open(lib.data_dir) as again:
        chat = again.chat(sid)
    assert [m.role for m in chat] == ["user", "assistant"] and chat[0].content == "What about the budget?"
    p = run("ask", "--session", str(sid), "Again?", "--no-save", "--json", "--max-tokens", "4",
            *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["session_id"] == sid and isinstance(out["citations"], list) and "answer" in out
    with Library.open(lib.data_dir) as again:
        assert len(again.chat(sid)) == 2


def test_session_image_question(tiny_model, library, tmp_path):
    _, sid = library
    img = tmp_path / "slide.png"
    PILImage.new("RGB", (400, 300), "red").save(img)
    p = run("ask", "--session", str(sid), "--image", str(img), "--at", "0:40", "What is this?",
            "--max-tokens", "4", "--stats", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    assert "media 1 parts" in p.stderr


def test_all_sessions_question(tiny_model, library):
    p = run("ask", "--all-sessions", "What did we decide about the budget?", "--max-steps", "2",
            "--max-tokens", "6", "--json", *model_args(tiny_model), guard=True)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["tool_calls"]) <= 2 and "answer" in out


def test_video_question(tiny_model, tmp_path):
    v = make_video(tmp_path / "clip.mp4", 3.0, fps=5, audio=np.zeros(0, np.float32))
    p = run("ask", "--video", str(v), "What is shown?", "--max-tokens", "4", "--json", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["span"] == [0.0, pytest.approx(3.0, abs=0.3)] and "video session" in p.stderr
    p2 = run("ask", "--video", str(v), "And now?", "--max-tokens", "4", "--json", *model_args(tiny_model))
    assert json.loads(p2.stdout)["session_id"] == out["session_id"]  # imported once


@pytest.mark.parametrize("args, words", [
    (["--session", "99", "q"], "no session 99"),
    (["--session", "1", "--at", "1:00", "q"], "--at goes with --image"),
    (["--session", "1", "--audio", "x.wav", "q"], "--audio cannot be combined"),
    (["--session", "1", "--image", "missing.png", "q"], "image not found"),
    (["--session", "1", "--image", "{img}", "--at", "soon", "q"], "--at wants a time"),
    (["--session", "1", ""], "the question is empty"),
    (["--all-sessions", "--think", "q"], "--think works with --session"),
    (["--video", "missing.mp4", "q"], "video not found"),
    (["--video", "{txt}", "q"], "not an audio or video file"),
    (["--video", "{wav}", "q"], "no video track"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_model, library, tmp_path, args, words):
    from app.media.audio import write_wav
    from tests.support.audio import tone

    img = tmp_path / "i.png"
    PILImage.new("RGB", (100, 100)).save(img)
    txt = tmp_path / "notes.mp4"
    txt.write_text("hello")
    wav = write_wav(tmp_path / "a.wav", tone(0.5))
    args = [a.format(img=img, txt=txt, wav=wav) for a in args]
    p = run("ask", *args, *model_args(tiny_model))
    assert_one_line_error(p, 2)
    assert words in p.stderr


def test_session_and_video_are_exclusive(tiny_model):
    p = run("ask", "--session", "1", "--all-sessions", "q", *model_args(tiny_model))
    assert p.returncode == 2 and "not allowed with" in p.stderr


def test_plain_question_reports_the_drafter(tiny_model, tmp_path):
    from tests.support.tiny_model import write_drafter

    drafter = write_drafter(tmp_path / "drafter.gguf")
    env = {"MINUTELY_DRAFTER": str(drafter)}
    p = run("ask", "Who sends the report?", "--max-tokens", "12", "--stats", *model_args(tiny_model),
            env_extra=env, guard=True)
    assert p.returncode == 0, p.stderr
    assert "model decodes for" in p.stderr and "MTP drafter proposed" in p.stderr
    q = run("ask", "Who sends the report?", "--max-tokens", "12", "--stats", "--no-drafter",
            *model_args(tiny_model), env_extra=env)
    assert q.returncode == 0, q.stderr
    assert q.stdout == p.stdout  # the same answer, decoded without it
    assert "model decodes for" in q.stderr and "drafter proposed" not in q.stderr
