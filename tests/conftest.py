"""The root conftest: a private data folder for every test, the tiny Gemma 4 and one loaded engine
(session fixtures every folder shares), and the fixtures of tests/support registered for all.

Helpers live in tests/support (imported by test modules); nothing imports this file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import llama_cpp  # noqa: F401  before numpy: see app/engine/__init__.py
import pytest

from tests.support.engine import engine_config

# Fixtures from support modules, for any test that names them: the private PulseAudio (session)
# and a private Xvfb (one per module that uses it).
pytest_plugins = ("tests.support.pulse", "tests.support.screen")

# Nothing a test does may reach the user's real data, settings or hub cache.
for var in ("MINUTELY_MODEL", "MINUTELY_MMPROJ", "MINUTELY_DRAFTER", "HF_TOKEN", "MINUTELY_CPU_VARIANT"):
    os.environ.pop(var, None)

# llama.cpp's CPU check (app/engine/cpucheck.py) keeps its verdict per machine in the data
# folder; every test has its own data folder, so the suite keeps one verdict for all of them
# (tests/engine/test_cpucheck.py checks the keeping itself, with files of its own).
_CPU_CHECK_DIR = tempfile.mkdtemp(prefix="minutely-test-cpucheck-")
atexit.register(shutil.rmtree, _CPU_CHECK_DIR, True)
os.environ["MINUTELY_CPU_CHECK_FILE"] = os.path.join(_CPU_CHECK_DIR, "cpu-check.json")


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    home = tmp_path / "minutely-home"
    monkeypatch.setenv("MINUTELY_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@dataclass(frozen=True)
class TinyModel:
    model: Path
    mmproj: Path
    dir: Path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyModel:
    """The tiny random Gemma 4 pair, written once per test session."""
    from tests.support.tiny_model import write_pair

    d = tmp_path_factory.mktemp("tiny-model")
    model, mmproj = write_pair(d)
    return TinyModel(model, mmproj, d)


@pytest.fixture(scope="session")
def engine(tiny_model):
    """One loaded Engine for the session (tests that depend on its cache reset it)."""
    from app.engine.engine import Engine

    e = Engine(tiny_model.model, tiny_model.mmproj, engine_config(8192))
    yield e
    e.close()
