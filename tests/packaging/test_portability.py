"""The installed llama.cpp on older CPUs than this one, under emulation (Debian's qemu-user).

``qemu-x86_64 -cpu MODEL`` runs one process as if on that CPU: cpuid answers as
that CPU does and an instruction it lacks is SIGILL. qemu-user does not follow a
process's children, so the self-test runs with ``--in-process``: the CPU check
and the model (the tiny Gemma 4 and the check's quantized model) run in the
emulated process itself. A build with an instruction the older CPU lacks fails
here, not on a user's machine. (The packaged bundle gets the same check in
tests/packaging/test_packaging.py.)
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

QEMU = shutil.which("qemu-x86_64")

pytestmark = [
    pytest.mark.slow, pytest.mark.timeout(900),
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"),
                       reason="x86-64 Linux: emulates older x86-64 CPUs"),
    pytest.mark.skipif(QEMU is None, reason="qemu-user is not installed (scripts/setup.sh --test installs it)"),
]

# An older CPU than any build machine: Haswell (2013: AVX2, FMA, F16C, BMI2; no AVX-512, no AMX).
OLD_CPU = "Haswell"


def emulated(cpu: str, *args: str, home: Path, timeout: float = 800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINUTELY_")}
    env.update(PYTHONPATH=str(ROOT), MINUTELY_HOME=str(home))
    return subprocess.run([QEMU, "-cpu", cpu, sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("cpu, variant", [(OLD_CPU, "haswell"), ("SandyBridge", "sandybridge")])
def test_the_self_test_passes_on_an_older_cpu(tiny_model, tmp_path, cpu, variant):
    p = emulated(cpu, "main.py", "--self-test", "--in-process", "--model", str(tiny_model.model),
                 "--mmproj", str(tiny_model.mmproj), "--threads", "1", "--max-tokens", "2",
                 home=tmp_path / "home")
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    line = p.stdout.strip()
    assert line.startswith("self-test OK"), line
    from app.engine import backends

    if backends.variant_paths():  # the portable build: the emulated CPU gets its own level
        assert f"cpu: variant {variant} (" in line, line
        assert "AVX512" not in line, line
