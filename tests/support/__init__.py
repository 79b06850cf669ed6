"""Helpers shared by the tests, the benchmarks (bench/) and scripts/: no tests live here.

Test modules import from here (or get fixtures from tests/conftest.py), never from each other.
Fixtures defined here that many folders use (the private PulseAudio, a private Xvfb) are
registered once in tests/conftest.py (`pytest_plugins`), so a test just names them.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
