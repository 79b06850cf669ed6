"""llama.cpp's CPU code on the user's machine: the portable build, the quantized check, its verdict.

Each case runs in a fresh interpreter (the check's verdict and the loaded CPU
backend are per process). A CPU variant that dies is played by a real shared
library with ggml's backend entry points that raises SIGILL when ggml loads it,
placed beside links to the real llama.cpp libraries (LLAMA_CPP_LIB_PATH).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT

X86 = platform.machine().lower() in ("x86_64", "amd64")


def py(code: str, verdict: Path, lib: Path | None = None, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("MINUTELY_CPU_VARIANT", "LLAMA_CPP_LIB_PATH")}
    full.update(PYTHONPATH=str(ROOT), MINUTELY_CPU_CHECK_FILE=str(verdict), **env)
    if lib is not None:
        full["LLAMA_CPP_LIB_PATH"] = str(lib)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=300)


CHECK = """
    import json, time
    from app.engine import backends, cpucheck
    t = time.perf_counter()
    v = cpucheck.check()
    cpucheck.ensure_backend()
    print(json.dumps({"variant": v.variant, "failed": v.failed, "cached": v.cached,
                      "seconds": time.perf_counter() - t, "features": backends.features(),
                      "variants": [x.name for x in backends.variants()]}))
"""


def real_lib() -> Path:
    import llama_cpp.llama_cpp as lc

    return Path(lc._base_path)


@pytest.fixture(scope="module")
def portable():
    from app.engine import backends

    if not backends.variant_paths():
        pytest.skip("llama.cpp here links one CPU's code (not the portable build of scripts/setup.sh)")


def faulting_lib_dir(tmp: Path, keep_real_variants: bool = True) -> Path:
    """Links to the real llama.cpp libraries plus a 'variant' that claims the best score and
    dies of SIGILL as ggml loads it: an AMX or AVX-512 variant on a CPU that faults on them."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    lib = tmp / "lib"
    lib.mkdir()
    for p in real_lib().iterdir():
        if keep_real_variants or not p.name.startswith("libggml-cpu-"):
            (lib / p.name).symlink_to(p)
    src = tmp / "fault.c"
    src.write_text("#include <signal.h>\n"
                   "int ggml_backend_score(void) { return 1 << 30; }\n"
                   "void *ggml_backend_init(void) { raise(SIGILL); return 0; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / "libggml-cpu-zzfault.so"), str(src)],
                   check=True)
    return lib


def test_the_portable_build_runs_the_best_variant_this_cpu_has_and_keeps_the_verdict(portable, tmp_path):
    verdict = tmp_path / "cpu-check.json"
    p = py(CHECK, verdict)
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout)
    assert first["variant"] == first["variants"][0] and not first["failed"] and not first["cached"]
    # the loaded code's features are llama.cpp's own report; the baseline every x86-64 variant
    # above x64 has is SSE3
    assert first["features"], first
    if X86 and first["variant"] != "x64":
        assert "SSE3" in first["features"]
    kept = json.loads(verdict.read_text())
    assert kept["variant"] == first["variant"] and kept["ok"] is True and kept["fingerprint"]

    p = py(CHECK, verdict)  # the next start: the kept verdict, no check children
    second = json.loads(p.stdout)
    assert second["variant"] == first["variant"] and second["cached"]

    kept["fingerprint"] = "another-cpu-or-build"
    verdict.write_text(json.dumps(kept))
    third = json.loads(py(CHECK, verdict).stdout)
    assert not third["cached"] and third["variant"] == first["variant"]


def test_a_variant_that_dies_is_struck_off_and_the_next_best_runs(portable, tmp_path):
    lib = faulting_lib_dir(tmp_path)
    verdict = tmp_path / "cpu-check.json"
    p = py(CHECK, verdict, lib)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["variants"][0] == "zzfault"
    assert out["failed"] == {"zzfault": "SIGILL"}
    assert out["variant"] == out["variants"][1]
    # remembered: the next start loads the good variant at once
    again = json.loads(py(CHECK, verdict, lib).stdout)
    assert again["cached"] and again["variant"] == out["variant"] and again["failed"] == {"zzfault": "SIGILL"}


def test_no_cpu_code_that_runs_is_one_line_and_exit_3_not_a_crash(portable, tmp_path, tiny_model):
    lib = faulting_lib_dir(tmp_path, keep_real_variants=False)
    env = {k: v for k, v in os.environ.items() if k != "MINUTELY_CPU_VARIANT"}
    env.update(PYTHONPATH=str(ROOT), LLAMA_CPP_LIB_PATH=str(lib),
               MINUTELY_CPU_CHECK_FILE=str(tmp_path / "cpu-check.json"))
    from PIL import Image

    img = tmp_path / "slide.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(img)
    model = ["--model", str(tiny_model.model), "--mmproj", str(tiny_model.mmproj)]
    # the self-test checks afresh; a question then meets the kept verdict: one line both
    # times, and no model process dying at every start
    for args in (["--self-test", *model], ["ask", "What is on this slide?", "--image", str(img), *model]):
        p = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 3, p.stdout + p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert "no CPU variant of llama.cpp runs a quantized matrix product" in lines[0]
        assert "zzfault SIGILL" in lines[0]


def test_the_model_process_is_never_started_when_the_cpu_code_cannot_run(tiny_model, monkeypatch):
    from app.engine.cpucheck import CPUUnsupported
    from app.engine.host import EngineHost

    monkeypatch.setenv("MINUTELY_CPU_VARIANT", "no-such-cpu")
    host = EngineHost(tiny_model.model, tiny_model.mmproj)
    with pytest.raises(CPUUnsupported, match="MINUTELY_CPU_VARIANT: no CPU variant 'no-such-cpu'"):
        host.start()
    assert host.pid is None


def test_a_build_for_another_cpu_says_how_to_get_the_portable_one():
    from app.engine.cpucheck import Verdict, _unsupported

    msg = str(_unsupported(Verdict(None, False, {"linked": "SIGILL"})))
    assert "compiled for another CPU" in msg and "REBUILD_LLAMA=1 bash scripts/setup.sh" in msg
    assert "\n" not in msg


def test_the_probe_model_is_quantized_like_the_real_one(tmp_path):
    import gguf

    from app.engine.cpucheck import write_probe_model

    r = gguf.GGUFReader(str(write_probe_model(tmp_path / "p.gguf")))
    kinds = {t.tensor_type.name for t in r.tensors}
    assert {"Q4_K", "Q6_K", "Q8_0"} <= kinds
