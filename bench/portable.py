"""The portable llama.cpp build against a -march=native build of the same version, side by side.

Minutely installs llama.cpp built for every CPU (scripts/llama-flags.sh: one CPU
backend per instruction-set level, the best that runs chosen at load). This
measures what that costs against a build for this very machine (the old
``pip install`` default), and what each CPU variant this machine can run gives
(the dispatch's worth over one fixed baseline): prompt and generation tokens/s
of Gemma 3 270M Q4_K_M through the Engine, each configuration in its own
process, in rotating order over several rounds (shared, noisy machines), medians
compared as ratios to the native build. Goal: the portable build's chosen
variant loses at most 10% to native.

The native build is compiled once (about 5 minutes on 2 cores) into
~/.cache/minutely/llama-wheels/native-<key>/ unless --native-lib names the
llama_cpp/lib folder of one.

    python bench/portable.py [--rounds 3] [--tokens 64] [--prompt 256] [--native-lib DIR] [--best-only] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GEMMA_TEMPLATE, add_model_args, median, reference_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LLAMA_VERSION = "0.3.36"


def native_lib(cache: Path | None = None) -> Path:
    """llama_cpp/lib of a -march=native build of the same version (built once, kept)."""
    key = hashlib.sha256(f"{LLAMA_VERSION}|native|{platform.machine()}|{sys.version.split()[0]}"
                         .encode()).hexdigest()[:16]
    base = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minutely" / "llama-wheels"
    out = base / f"native-{key}"
    lib = out / "llama_cpp" / "lib"
    if (lib / "libllama.so").exists():
        return lib
    wheels = Path(tempfile.mkdtemp(prefix="native-wheel-"))
    print(f"compiling a native llama.cpp {LLAMA_VERSION} for the comparison (once) ...", flush=True)
    t = time.perf_counter()
    env = dict(os.environ, CMAKE_ARGS="-DGGML_NATIVE=ON")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                    "--no-binary", "llama-cpp-python", "-w", str(wheels),
                    f"llama-cpp-python=={LLAMA_VERSION}"], check=True, env=env)
    print(f"native build: {time.perf_counter() - t:.0f}s", flush=True)
    whl = next(wheels.glob("llama_cpp_python-*.whl"))
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.startswith("llama_cpp/lib/"):
                z.extract(name, out)
    for p in lib.iterdir():
        p.chmod(0o755)
    return lib


def worker(args) -> int:
    """One configuration in this process: load, then time prefill and generation."""
    from app.engine import backends
    from app.engine.engine import Engine, EngineConfig

    cfg = EngineConfig(n_ctx=2048, n_threads=args.threads, n_batch=512)
    words = ("the budget meeting agreed to move the office to Lisbon and hire two designers "
             "before the launch in October ").split()
    text = " ".join(words[i % len(words)] for i in range(args.prompt))
    with Engine(reference_model(args.model), None, cfg, chat_template=GEMMA_TEMPLATE,
                require_arch=None) as e:
        msgs = [{"role": "user", "content": f"Summarize: {text}"}]
        e.chat(msgs, max_tokens=4)  # warm-up
        e.reset()
        r = e.chat(msgs, max_tokens=args.tokens, ignore_eos=True)
        print(json.dumps({"prompt_tps": r.prompt_tokens / r.prompt_seconds,
                          "gen_tps": r.generated_tokens / r.generate_seconds,
                          "cpu": backends.describe()}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(ap)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=256, help="words in the prompt")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--native-lib", type=Path)
    ap.add_argument("--best-only", action="store_true",
                    help="only the variant users get here against native (more rounds in the same time)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    from app.engine import backends

    configs: dict[str, dict[str, str]] = {}
    if backends.dynamic():
        runnable = backends.variants()  # this CPU's cpuid verdict, best first
        for v in runnable[:1] if args.best_only else runnable:
            configs[f"portable:{v.name}"] = {"MINUTELY_CPU_VARIANT": v.name}
        best = f"portable:{runnable[0].name}"
    else:
        configs["installed"] = {}
        best = "installed"
    configs["native"] = {"LLAMA_CPP_LIB_PATH": str(args.native_lib or native_lib())}

    check_file = Path(tempfile.mkdtemp(prefix="bench-cpucheck-")) / "cpu-check.json"
    cmd = [sys.executable, __file__, "--worker", "--tokens", str(args.tokens), "--prompt",
           str(args.prompt), "--threads", str(args.threads)]
    if args.model:
        cmd += ["--model", str(args.model)]
    results: dict[str, list[dict]] = {k: [] for k in configs}
    names = list(configs)
    for i in range(args.rounds):
        for k in names[i % len(names):] + names[:i % len(names)]:
            env = {k2: v for k2, v in os.environ.items() if k2 not in ("LLAMA_CPP_LIB_PATH", "MINUTELY_CPU_VARIANT")}
            env.update(configs[k], PYTHONPATH=str(ROOT), MINUTELY_CPU_CHECK_FILE=str(check_file))
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                raise SystemExit(f"{k}: {p.stderr.strip().splitlines()[-1:]}")
            results[k].append(json.loads(p.stdout.strip().splitlines()[-1]))
    out = {}
    nat = {m: median([r[m] for r in results["native"]]) for m in ("prompt_tps", "gen_tps")}
    for k, rs in results.items():
        med = {m: median([r[m] for r in rs]) for m in ("prompt_tps", "gen_tps")}
        out[k] = {**med, "prompt_vs_native": med["prompt_tps"] / nat["prompt_tps"],
                  "gen_vs_native": med["gen_tps"] / nat["gen_tps"], "cpu": rs[-1]["cpu"]}
    if args.json:
        print(json.dumps({"best": best, "results": out}, indent=1))
        return 0
    print(f"Gemma 3 270M Q4_K_M, {args.threads} thread(s), prompt ~{args.prompt} words, "
          f"{args.tokens} generated, {args.rounds} rounds (medians)")
    for k, r in out.items():
        mark = "  <- what users get here" if k == best else ""
        print(f"  {k:24s} prompt {r['prompt_tps']:8.1f} tok/s ({r['prompt_vs_native']:6.1%})   "
              f"generate {r['gen_tps']:6.1f} tok/s ({r['gen_vs_native']:6.1%}){mark}")
    worst = min(out[best]["prompt_vs_native"], out[best]["gen_vs_native"])
    print(f"portable ({best}) vs native: {worst:.1%} at worst (goal >= 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
