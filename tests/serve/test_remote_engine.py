"""The remote engine against a real OpenAI-compatible server: Minutely's own ``serve`` on loopback
(tiny Gemma 4), as a team would point the app at a GPU box. Questions, audio and images, JSON
schema, a whole transcription (CLI and pipeline), the server going away mid-job (the job fails in
one line and resumes once the server is back), a server without audio (said plainly), and the
window's model worker taking the server from the settings."""

from __future__ import annotations

import json
import os
import signal
import socket

import numpy as np
import pytest

from app.engine.errors import EngineError
from app.engine.messages import Audio, Image, Message
from app.engine.remote import RemoteEngine
from app.library import Library
from tests.support.cli import model_args, run
from tests.support.meetings import have_tools, make_meeting
from tests.support.serve import ServeProc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model):
    s = ServeProc(*model_args(tiny_model), "--port", "0", "--quiet")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    if not have_tools():
        pytest.skip("needs espeak-ng and sox (scripts/setup.sh --test)")
    return make_meeting(tmp_path_factory.mktemp("meeting"), 2, 10, seed=5)


def test_questions_audio_images_and_schema_reach_the_server(server):
    e = RemoteEngine(server.url.removesuffix("/v1"))
    assert e.check() == ["tiny-gemma4"] and e.model == "tiny-gemma4"
    stream = e.stream([Message.user("Say hello.")], max_tokens=12, ignore_eos=True)
    pieces = list(stream)
    r = stream.reply
    assert r is not None and "".join(pieces) == r.text and r.generated_tokens == 12
    assert r.finish_reason == "length" and r.prompt_tokens > 5

    from PIL import Image as PILImage

    plain = e.chat([Message.user("What is this?")], max_tokens=4)
    t = np.arange(16_000 * 2) / 16_000
    heard = e.chat([Message.user(Audio(samples=(0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)),
                                 "What is this?")], max_tokens=4)
    seen = e.chat([Message.user(Image(image=PILImage.new("RGB", (64, 48), (10, 200, 30))), "What is this?")],
                  max_tokens=4)
    # the media reached the model: 2 s of audio is ~50 tokens, an image its token budget
    assert heard.prompt_tokens - plain.prompt_tokens >= 40
    assert seen.prompt_tokens - plain.prompt_tokens >= 60

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    answer = e.chat([Message.user("Give a number.")], max_tokens=24, json_schema=schema)
    assert isinstance(answer.json()["n"], int)


def test_a_batch_goes_as_concurrent_requests_and_keeps_its_order(server):
    e = RemoteEngine(server.url)
    convs = [[Message.user("Count " + "and more " * (3 * i))] for i in range(5)]  # prompts of different sizes
    replies = e.chat_batch(convs, max_tokens=3, ignore_eos=True)
    singles = [e.chat(c, max_tokens=3, ignore_eos=True) for c in convs]
    assert [r.prompt_tokens for r in replies] == [r.prompt_tokens for r in singles]  # in order
    assert len({r.prompt_tokens for r in replies}) == 5
    assert [r.text for r in replies] == [r.text for r in singles]  # greedy: the same answers


def test_a_file_is_transcribed_on_the_server_through_the_cli(server, meeting, _private_home):
    p = run("transcribe", str(meeting.wav), "--json", "--server", server.url, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["segments"]) >= 5
    with Library.open(_private_home) as lib:
        (s,) = lib.sessions()
        assert s.status == "ready" and len(lib.segments(s.id)) == len(out["segments"])


def test_the_server_going_away_fails_the_job_in_one_line_and_it_resumes(tiny_model, meeting, _private_home):
    from app.pipeline.transcribe import TranscribeOptions, transcribe_file

    port = _free_port()
    args = (*model_args(tiny_model), "--port", str(port), "--quiet")
    first = ServeProc(*args)
    e = RemoteEngine(first.url)

    def progress(p):
        if p.done >= 2 and first.p.poll() is None:
            os.kill(first.p.pid, signal.SIGKILL)  # the server dies mid-job
            first.p.wait(10)

    with Library.open(_private_home) as lib:
        with pytest.raises(EngineError) as err:
            transcribe_file(lib, e, meeting.wav, TranscribeOptions(parallel=2), progress=progress)
        line = str(err.value)
        assert f"127.0.0.1:{port}" in line and "\n" not in line
        (job,) = lib.jobs.find()
        assert job.state == "failed" and job.error == line
        kept = {g.id: (g.start, g.text) for g in lib.segments(job.session_id)}
        assert len(kept) >= 2
    again = ServeProc(*args)  # the server is back, at the same address
    try:
        with Library.open(_private_home) as lib:
            sid = transcribe_file(lib, RemoteEngine(again.url), meeting.wav, TranscribeOptions(parallel=2))
            assert sid == job.session_id and lib.jobs.get(job.id).state == "done"
            after = {g.id: (g.start, g.text) for g in lib.segments(sid)}
            assert {k: after[k] for k in kept} == kept  # what was stored before stays
            assert len(after) == len(job.resume_state().utterances)
    finally:
        again.stop()


def test_a_reply_cut_by_the_server_dying_is_one_line(tiny_model):
    s = ServeProc(*model_args(tiny_model), "--port", "0", "--quiet")
    try:
        e = RemoteEngine(s.url)
        stream = e.stream([Message.user("Talk for a long time.")], max_tokens=3000, ignore_eos=True)
        with pytest.raises(EngineError, match="went away mid-reply|stopped answering") as err:
            for n, _piece in enumerate(stream):
                if n == 3:
                    os.kill(s.p.pid, signal.SIGKILL)
        assert "\n" not in str(err.value)
    finally:
        s.stop()


def test_a_server_without_audio_is_said_plainly(tiny_model, meeting):
    s = ServeProc("--model", str(tiny_model.model), "--threads", "1", "--ctx", "4096", "--port", "0", "--quiet")
    try:
        p = run("transcribe", str(meeting.wav), "--server", s.url, timeout=300)
        assert p.returncode != 0
        errors = [x for x in p.stderr.splitlines() if x.startswith("minutely: error: ")]
        assert len(errors) == 1 and "does not take audio" in errors[0] and "Traceback" not in p.stderr, p.stderr
        ok = run("ask", "--server", s.url, "--max-tokens", "4", "Who was there?", timeout=120)
        assert ok.returncode == 0, ok.stderr  # text questions still go there
    finally:
        s.stop()


def test_the_window_model_worker_uses_the_server_in_the_settings(qtbot, server, tmp_path):
    from app.ui.bootstrap import build_services

    services = build_services(tmp_path / "home")
    try:
        services.settings.model_server = server.url
        services.save_settings()
        assert services.model.has_model()
        got = []
        task = services.runner.run_model("Asking the server",
                                         lambda ctx: ctx.engine.chat([Message.user("Hi")], max_tokens=5,
                                                                     ignore_eos=True),
                                         on_done=got.append)
        qtbot.waitUntil(lambda: bool(got) or task.finished, timeout=60_000)
        assert got and got[0].generated_tokens == 5, task.state
    finally:
        services.close()
