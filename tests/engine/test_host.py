"""EngineHost: the model in a supervised child process that may die."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from PIL import Image as PILImage

from app.engine.engine import Engine
from app.engine.errors import EngineCrashed, ModelError
from app.engine.host import EngineHost
from app.engine.messages import Audio, Image, Message
from tests.support import tiny_model as tm
from tests.support.audio import tone
from tests.support.engine import engine_config

CFG = engine_config(8192)


@pytest.fixture
def host(tiny_model):
    h = EngineHost(tiny_model.model, tiny_model.mmproj, CFG)
    yield h
    h.close()


def test_host_answers_like_the_engine(host, tiny_model):
    msgs = [Message.user(Image(PILImage.new("RGB", (320, 240), "red")), Audio(tone(2.0)),
                         "What happens here?")]
    s = host.stream(msgs, max_tokens=12, ignore_eos=True)
    pieces = list(s)
    assert len(pieces) > 1 and "".join(pieces) == s.reply.text
    assert s.reply.media_tokens[1] == 50
    with Engine(tiny_model.model, tiny_model.mmproj, CFG) as e:
        assert e.chat(msgs, max_tokens=12, ignore_eos=True).text == s.reply.text
    assert host.pid != os.getpid()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
def test_child_death_mid_answer_is_engine_crashed_and_recovers(host, sig):
    s = host.stream([Message.user("Talk.")], max_tokens=200_000 // 10, ignore_eos=True)
    it = iter(s)
    next(it)  # the child is answering
    os.kill(host.pid, sig)
    with pytest.raises(EngineCrashed) as e:
        for _ in it:
            pass
    assert signal.Signals(sig).name in str(e.value) and "\n" not in str(e.value)
    # the parent carries on; the next call starts a fresh child
    r = host.chat([Message.user("Again.")], max_tokens=3, ignore_eos=True)
    assert r.generated_tokens == 3 and host.restarts == 1


def test_cancel_crosses_the_process_boundary(host):
    seen = threading.Event()
    t = threading.Thread(target=lambda: (seen.wait(10), host.cancel()))
    t.start()
    s = host.stream([Message.user("Talk.")], max_tokens=20_000, ignore_eos=True)
    for i, _ in enumerate(s):
        if i == 3:
            seen.set()
    t.join()
    assert s.reply.finish_reason == "cancelled" and s.reply.generated_tokens < 20_000
    assert host.chat([Message.user("ok")], max_tokens=2, ignore_eos=True).generated_tokens == 2


def test_abandoned_stream_leaves_the_host_clean(host):
    s = host.stream([Message.user("Talk.")], max_tokens=20_000, ignore_eos=True)
    it = iter(s)
    next(it)
    s.close()
    r = host.chat([Message.user("ok")], max_tokens=4, ignore_eos=True)
    assert r.generated_tokens == 4


def test_bad_files_are_refused_before_spawning(tiny_model, tmp_path):
    p = tm.write_mmproj(tmp_path / "mm64.gguf", projection_dim=64)
    with pytest.raises(ModelError, match="does not belong"):
        EngineHost(tiny_model.model, p, CFG)


def test_load_failure_in_the_child_is_a_model_error(tiny_model, tmp_path):
    p = tm.write_model(tmp_path / "nochat.gguf", chat_template=None)
    h = EngineHost(p, tiny_model.mmproj, CFG)
    try:
        with pytest.raises(ModelError, match="chat template"):
            h.chat([Message.user("hi")], max_tokens=2)
        assert not h.alive
    finally:
        h.close()


def test_close_stops_the_child(tiny_model):
    h = EngineHost(tiny_model.model, tiny_model.mmproj, CFG)
    h.start()
    pid = h.pid
    assert h.alive
    h.close()
    assert not h.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_host_batch(host):
    convs = [[Message.user("Transcribe.", Audio(tone(1.0 + i)))] for i in range(3)]
    rs = host.chat_batch(convs, max_tokens=5, ignore_eos=True)
    assert [r.media_tokens for r in rs] == [[25], [50], [75]] and all(r.generated_tokens == 5 for r in rs)


@pytest.mark.parametrize("call", ["chat_batch", "count_tokens", "chat"])
def test_a_child_that_dies_as_a_request_is_sent_is_a_crash_not_a_broken_pipe(host, call, monkeypatch):
    """The child dies between the liveness check and the request (seen in CI as '[Errno 32] Broken
    pipe' on the user's screen): the caller gets EngineCrashed naming what happened to the model
    process, and the call after that starts a fresh one."""
    host.start()
    pid = host.pid
    ensure = host._ensure

    def ensure_then_die():
        ensure()
        if host.pid == pid:
            os.kill(pid, signal.SIGKILL)
            host._proc.join(10)

    monkeypatch.setattr(host, "_ensure", ensure_then_die)
    msgs = [Message.user("Hello there")]
    do = {"chat_batch": lambda: host.chat_batch([msgs, msgs], max_tokens=4),
          "count_tokens": lambda: host.count_tokens(msgs),
          "chat": lambda: host.chat(msgs, max_tokens=4)}[call]
    with pytest.raises(EngineCrashed, match="model process"):
        do()
    do()
    assert host.restarts == 1 and host.pid != pid
