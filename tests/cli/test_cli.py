"""The command line, run as a user runs it: `python main.py ...` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from app import __version__
from app.media.audio import write_wav
from tests.support import tiny_model as tm
from tests.support.audio import tone
from tests.support.cli import ROOT, assert_one_line_error, model_args, run
from tests.support.media_factory import make_video


def test_version():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"Minutely {__version__}"


def test_ask_with_image_and_audio_streams_an_answer(tiny_model, tmp_path):
    img = tmp_path / "slide.png"
    PILImage.new("RGB", (640, 360), "orange").save(img)
    wav = write_wav(tmp_path / "q.wav", tone(1.5))
    p = run("ask", "--image", str(img), "--audio", str(wav), "--max-tokens", "12", "--stats",
            "What is on the slide?", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip()) > 0
    assert "media [" in p.stderr and "38]" in p.stderr  # 1.5 s of audio = 38 tokens


def test_ask_reads_the_model_from_the_environment(tiny_model):
    p = run("ask", "hello", "--max-tokens", "3", "--threads", "1", "--ctx", "1024",
            env_extra={"MINUTELY_MODEL": str(tiny_model.model), "MINUTELY_MMPROJ": str(tiny_model.mmproj)})
    assert p.returncode == 0, p.stderr


def test_ask_json_schema(tiny_model, tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}},
                                  "required": ["ok"]}))
    p = run("ask", "Is it ok?", "--json-schema", str(schema), "--max-tokens", "50", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    assert isinstance(json.loads(p.stdout)["ok"], bool)


def test_missing_input_files_exit_2(tiny_model, tmp_path):
    assert_one_line_error(run("ask", "--image", str(tmp_path / "none.png"), "?", *model_args(tiny_model)), 2)
    bad = tmp_path / "notmedia.mp4"
    bad.write_text("hello")
    assert_one_line_error(run("ask", "--audio", str(bad), "?", *model_args(tiny_model)), 2)
    assert run("ask").returncode == 2  # argparse usage error


def test_bad_model_exits_3(tiny_model, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.model.read_bytes()[:5000])
    p = run("ask", "hi", "--model", str(cut), "--mmproj", str(tiny_model.mmproj))
    assert_one_line_error(p, 3)
    assert "truncated" in p.stderr
    p = run("ask", "hi")  # nothing configured in this fresh data folder
    assert_one_line_error(p, 3)
    assert "models download" in p.stderr


def test_models_check(tiny_model, tmp_path):
    p = run("models", "check", "--model", str(tiny_model.model), "--mmproj", str(tiny_model.mmproj), "--load")
    assert p.returncode == 0, p.stderr
    assert "audio: yes" in p.stdout and "vision: yes" in p.stdout and p.stdout.strip().endswith("ok")
    mm = tm.write_mmproj(tmp_path / "noaudio.gguf", audio=False)
    p = run("models", "check", "--model", str(tiny_model.model), "--mmproj", str(mm))
    assert_one_line_error(p, 3)
    assert "no audio projector" in p.stderr


def test_models_import_reference_and_copy(tiny_model, _private_home):
    p = run("models", "import", str(tiny_model.model), str(tiny_model.mmproj))
    assert p.returncode == 0, p.stderr
    settings = json.loads((_private_home / "settings.json").read_text())
    assert settings["model_path"] == str(tiny_model.model.resolve())
    p = run("models", "import", "--copy", str(tiny_model.model), str(tiny_model.mmproj))
    assert p.returncode == 0, p.stderr
    settings = json.loads((_private_home / "settings.json").read_text())
    copied = Path(settings["model_path"])
    assert copied.is_relative_to(_private_home) and copied.read_bytes() == tiny_model.model.read_bytes()
    # the imported model is now the one `ask` uses
    p = run("ask", "hi", "--max-tokens", "2", "--threads", "1", "--ctx", "1024")
    assert p.returncode == 0, p.stderr
    p = run("models", "list", "--json")
    assert json.loads(p.stdout)["current"]["source"] == "settings"


def test_models_import_refuses_a_wrong_pair(tiny_model, tmp_path, _private_home):
    p = run("models", "import", str(tiny_model.mmproj), str(tiny_model.model))
    assert_one_line_error(p, 3)
    assert not (_private_home / "settings.json").exists()


def test_models_list_shows_the_catalogue():
    p = run("models", "list", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    defaults = [e for e in data["catalogue"] if e["default"]]
    assert len(defaults) == 1 and not defaults[0]["downloaded"] and data["current"] is None


@pytest.mark.slow
def test_offline_ask_with_audio_and_image_opens_no_socket(tiny_model, tmp_path):
    """End to end under a guard that refuses any non-loopback network access."""
    video = make_video(tmp_path / "clip.mp4", 2.0)
    img = tmp_path / "screen.png"
    PILImage.new("RGB", (800, 600), "purple").save(img)
    p = run("ask", "--audio", str(video), "--image", str(img), "--max-tokens", "8", "--stats",
            "Summarize.", *model_args(tiny_model), guard=True,
            env_extra={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": ""})
    assert p.returncode == 0, p.stderr
    assert "OFFLINE-GUARD BLOCKED" not in p.stderr
    image_tokens, audio_tokens = map(int, re.search(r"media \[(\d+), (\d+)\]", p.stderr).groups())
    assert 70 <= image_tokens <= 1120
    assert 50 <= audio_tokens <= 53  # 2 s of AAC (+ the encoder's priming samples) at 25 tokens/s


def test_the_offline_guard_really_blocks(tmp_path):
    script = tmp_path / "net.py"
    script.write_text("import socket\ntry:\n    socket.create_connection(('hub.invalid', 443), timeout=1)\n"
                      "except PermissionError as e:\n    print('refused:', e)\n")
    p = subprocess.run([sys.executable, "-m", "tests.support.offline_guard", str(script)], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert "OFFLINE-GUARD BLOCKED" in p.stderr and "refused:" in p.stdout


def test_models_download_resumes_and_configures_the_model(_private_home, tmp_path):
    """`models download NAME` against the loopback hub, under the offline guard."""
    from tests.support.hub import FakeHub
    from tests.support.tiny_model import MMPROJ_NAME, MODEL_NAME, write_pair

    model, mmproj = write_pair(tmp_path / "src")
    files = {MODEL_NAME: model.read_bytes(), MMPROJ_NAME: mmproj.read_bytes()}
    with FakeHub(files=files) as hub:
        (_private_home / "models").mkdir(parents=True)
        (_private_home / "models" / "catalogue.json").write_text(json.dumps({"format": 1, "models": [{
            "name": "tiny", "title": "Tiny Gemma 4", "repo": hub.repo, "revision": "main",
            "model_file": MODEL_NAME, "mmproj_file": MMPROJ_NAME, "model_size": len(files[MODEL_NAME]),
            "mmproj_size": len(files[MMPROJ_NAME]), "ram_gb": 0.1}]}))
        env = {"HF_ENDPOINT": hub.url}
        hub.cut_after_bytes = 400_000
        p = run("models", "download", "tiny", env_extra=env, guard=True)
        assert p.returncode == 3 and "Traceback" not in p.stderr
        last = p.stderr.strip().splitlines()[-1]  # after the progress lines, one error line
        assert last.startswith("minutely: error: ") and "resume" in last
        p = run("models", "download", "tiny", env_extra=env, guard=True)
        assert p.returncode == 0, p.stderr
        assert "OFFLINE-GUARD BLOCKED" not in p.stderr
        assert any(r.range and r.range != "bytes=0-" for r in hub.gets("cdn"))
    settings = json.loads((_private_home / "settings.json").read_text())
    assert Path(settings["model_path"]).read_bytes() == files[MODEL_NAME]
    p = run("ask", "hi", "--max-tokens", "2", "--threads", "1", "--ctx", "1024")
    assert p.returncode == 0, p.stderr
    p = run("models", "download", "nonesuch")
    assert_one_line_error(p, 3)
    assert "unknown model" in p.stderr
