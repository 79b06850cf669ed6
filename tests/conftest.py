"""Shared fixtures: a private data folder for every test, and the tiny Gemma 4."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import llama_cpp  # noqa: F401  before numpy: see app/engine/__init__.py
import numpy as np
import pytest

# Nothing a test does may reach the user's real data, settings or hub cache.
for var in ("MINUTELY_MODEL", "MINUTELY_MMPROJ", "HF_TOKEN", "MINUTELY_CPU_VARIANT"):
    os.environ.pop(var, None)

# llama.cpp's CPU check (app/engine/cpucheck.py) keeps its verdict per machine in the data
# folder; every test has its own data folder, so the suite keeps one verdict for all of them
# (tests/test_cpucheck.py checks the keeping itself, with files of its own).
_CPU_CHECK_DIR = tempfile.mkdtemp(prefix="minutely-test-cpucheck-")
atexit.register(shutil.rmtree, _CPU_CHECK_DIR, True)
os.environ["MINUTELY_CPU_CHECK_FILE"] = os.path.join(_CPU_CHECK_DIR, "cpu-check.json")


# MINUTELY_TEST_GPU_LAYERS=-1 runs the engine tests with every layer offloaded
# (on a machine with a GPU build of llama.cpp); the default is the CPU.
GPU_LAYERS = int(os.environ.get("MINUTELY_TEST_GPU_LAYERS", "0"))


def engine_config(n_ctx: int = 8192):
    from app.engine.engine import EngineConfig

    return EngineConfig(n_ctx=n_ctx, n_threads=1, n_gpu_layers=GPU_LAYERS)


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
    from tests.fixtures.tiny_model import write_pair

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


def tone(seconds: float, freq: float = 220.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def transcript(n_lines: int) -> str:
    """A long meeting transcript; long enough to pass the sliding window many times."""
    names = ["Ana", "Ben", "Chloe", "Dev"]
    lines = []
    for i in range(n_lines):
        lines.append(f"[{i // 6:02d}:{(i * 10) % 60:02d}] {names[i % 4]}: we talk about the budget "
                     f"for the next quarter and item {i} of the report")
    return "\n".join(lines)
