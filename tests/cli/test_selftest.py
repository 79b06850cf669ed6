"""`minutely --self-test` from a source checkout (the packaged one: tests/packaging/test_packaging.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from app import __version__
from tests.support import ROOT


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def test_self_test_answers_audio_and_image_in_the_model_process(tiny_model):
    p = run("--self-test", "--model", str(tiny_model.model), "--mmproj", str(tiny_model.mmproj),
            "--threads", "1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"self-test OK: Minutely {__version__} (source)")
    assert "audio 50 + image 80" in lines[0] and "PortAudio" in lines[0]
    assert "decoding: " in lines[0] and "(no MTP drafter)" in lines[0]


def test_self_test_reports_the_drafter(tiny_model, tmp_path, monkeypatch):
    from tests.support.tiny_model import write_drafter

    monkeypatch.setenv("MINUTELY_DRAFTER", str(write_drafter(tmp_path / "drafter.gguf")))
    p = run("--self-test", "--model", str(tiny_model.model), "--mmproj", str(tiny_model.mmproj),
            "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert "MTP drafter proposed" in p.stdout and "per token" in p.stdout


def test_self_test_without_a_model_is_a_model_problem():
    p = run("self-test")
    assert p.returncode == 3
    assert p.stderr.startswith("minutely: error: no model") and len(p.stderr.strip().splitlines()) == 1


def test_self_test_names_a_missing_piece(tiny_model, tmp_path):
    # a sounddevice that cannot find PortAudio, first on the path: what a bundle missing it does
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    p = subprocess.run([sys.executable, "main.py", "--self-test", "--model", str(tiny_model.model),
                        "--mmproj", str(tiny_model.mmproj)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.strip() == "minutely: self-test failed: portaudio: OSError: PortAudio library not found"
