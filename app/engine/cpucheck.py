"""Does llama.cpp's CPU code run on this machine? Checked once per machine, before a model loads.

An installation can carry instructions the user's CPU does not have (a build
compiled with ``-march=native`` on another machine) or that it advertises but
faults on (AMX tiles in some VMs). Either way the first quantized matrix product
of the model dies with SIGILL — for the app, a model process that crashes on
every load. So before the first load on a machine, a child process loads the
CPU code that would be used, writes a tiny model whose weights are quantized
like the real one's (Q4_K, Q6_K, Q8_0), and evaluates a prompt (the batched
matrix kernels) and a few single tokens (the vector kernels) through llama.cpp
with its default weight repacking (where AMX and the repacked AVX kernels run).

With a portable build (several CPU variants, see backends.py) the best-scoring
variant is tried first; one that dies is struck off and the next is tried, so a
faulting AMX or AVX-512 variant costs one child, not the app. The verdict is
kept in ``<data>/cpu-check.json`` under a fingerprint of the CPU and the llama.cpp
libraries (a new CPU, a rebuilt or upgraded llama.cpp: checked again). When no
CPU code runs, ``CPUUnsupported`` says in one line what is wrong and which build
to install instead of a crash loop.

``MINUTELY_CPU_VARIANT=<name>`` skips the check and loads that variant (for
people who know their machine). ``MINUTELY_CPU_CHECK_FILE`` moves the verdict's
file (the test suite shares one across its private data folders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import backends
from .errors import ModelError

log = logging.getLogger("minutely.engine.cpucheck")

ENV_FILE = "MINUTELY_CPU_CHECK_FILE"
CHECK_TIMEOUT = 300.0   # seconds for one child (an emulated CPU is ~100x slower)
_FAULTS = {signal.SIGILL, getattr(signal, "SIGBUS", signal.SIGILL)}
_WIN_ILLEGAL = 0xC000001D  # STATUS_ILLEGAL_INSTRUCTION

_lock = threading.Lock()
_memo: Verdict | None = None


class CPUUnsupported(ModelError):
    """llama.cpp's CPU code cannot run on this machine (exit 3, like every model problem)."""


@dataclass
class Verdict:
    variant: str | None                 # the CPU variant to load; None: a build that links its CPU code
    ok: bool = True
    failed: dict[str, str] = field(default_factory=dict)   # variant -> how its check died
    system_info: str = ""                # llama.cpp's feature line with that code loaded
    seconds: float = 0.0
    fingerprint: str = ""
    cached: bool = False

    def summary(self) -> str:
        which = f"variant {self.variant}" if self.variant else "linked CPU code"
        struck = f"; struck off: {', '.join(f'{k} ({v})' for k, v in self.failed.items())}" \
            if self.failed else ""
        how = "cached" if self.cached else f"{self.seconds:.2f}s"
        return f"quantized check OK with {which} ({how}){struck}"


# -- the probe model and the probe -------------------------------------------------------------

_E, _F, _H, _HKV, _LAYERS, _VOCAB = 256, 512, 4, 2, 2, 512  # rows of 256: k-quant blocks


def _blocks(rng, rows: int, cols: int, qtype) -> tuple:
    """Random but well-formed quantized rows: finite scales, any quant bits."""
    import gguf
    import numpy as np

    per, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // per
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    scale = np.full(nb, 0.01, dtype=np.float16).view(np.uint8).reshape(nb, 2)
    T = gguf.GGMLQuantizationType
    if qtype == T.Q4_K:     # d, dmin (f16), scales[12], qs[128]
        raw[:, 0:2] = scale
        raw[:, 2:4] = scale
    elif qtype == T.Q6_K:   # ql[128], qh[64], scales[16] (int8), d (f16)
        raw[:, 208:210] = scale
    elif qtype == T.Q8_0:   # d (f16), qs[32]
        raw[:, 0:2] = scale
    return raw.reshape(rows, cols // per * size), qtype


def write_probe_model(path: Path, seed: int = 0) -> Path:
    """A 2-layer llama-architecture model, a few MB, quantized like a Q4_K_M model."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    T = gguf.GGMLQuantizationType
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.name", "minutely-cpu-check")
    for k, v in (("context_length", 256), ("embedding_length", _E), ("block_count", _LAYERS),
                 ("feed_forward_length", _F), ("attention.head_count", _H),
                 ("attention.head_count_kv", _HKV), ("rope.dimension_count", _E // _H),
                 ("vocab_size", _VOCAB)):
        w.add_uint32(f"llama.{k}", v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_string("tokenizer.ggml.model", "none")  # token ids go in directly: no vocabulary needed

    def q(name: str, rows: int, cols: int, qtype) -> None:
        data, t = _blocks(rng, rows, cols, qtype)
        w.add_tensor(name, data, raw_dtype=t)

    def norm(name: str) -> None:
        w.add_tensor(name, np.ones(_E, dtype=np.float32))

    kv = _E // _H * _HKV
    q("token_embd.weight", _VOCAB, _E, T.Q4_K)
    norm("output_norm.weight")
    q("output.weight", _VOCAB, _E, T.Q6_K)
    for i in range(_LAYERS):
        b = f"blk.{i}."
        norm(b + "attn_norm.weight")
        q(b + "attn_q.weight", _E, _E, T.Q4_K)
        q(b + "attn_k.weight", kv, _E, T.Q4_K)
        q(b + "attn_v.weight", kv, _E, T.Q6_K)
        q(b + "attn_output.weight", _E, _E, T.Q8_0)
        norm(b + "ffn_norm.weight")
        q(b + "ffn_gate.weight", _F, _E, T.Q4_K)
        q(b + "ffn_up.weight", _F, _E, T.Q4_K)
        q(b + "ffn_down.weight", _E, _F, T.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def run_probe(model: Path, prompt_tokens: int = 48, steps: int = 4) -> None:
    """Evaluate a prompt and a few single tokens of the probe model in this process.

    Raises RuntimeError when llama.cpp refuses; an instruction this CPU lacks
    kills the process (SIGILL) — which is why the check runs it in a child.
    """
    import math

    import llama_cpp as L

    mp_ = L.llama_model_default_params()
    model_p = L.llama_model_load_from_file(str(model).encode(), mp_)
    if not model_p:
        raise RuntimeError("llama.cpp could not load the CPU check's model")
    try:
        cp = L.llama_context_default_params()
        cp.n_ctx = 128
        cp.n_batch = cp.n_ubatch = 64
        cp.n_threads = cp.n_threads_batch = 2 if (os.cpu_count() or 1) > 1 else 1
        ctx = L.llama_init_from_model(model_p, cp)
        if not ctx:
            raise RuntimeError("llama.cpp could not create the CPU check's context")
        try:
            toks = [(7 * i + 3) % _VOCAB for i in range(prompt_tokens)]
            for chunk in [toks] + [[(11 * s + 5) % _VOCAB] for s in range(steps)]:
                arr = (L.llama_token * len(chunk))(*chunk)
                if L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk))) != 0:
                    raise RuntimeError("llama.cpp could not evaluate the CPU check's prompt")
                logits = L.llama_get_logits_ith(ctx, -1)
                if not all(math.isfinite(logits[i]) for i in range(0, _VOCAB, 17)):
                    raise RuntimeError("the quantized matrix product gave non-finite numbers")
        finally:
            L.llama_free(ctx)
    finally:
        L.llama_model_free(model_p)


class _DidNotLoad(Exception):
    """A CPU variant's library did not load (a broken or foreign file): strike it off."""


def _try_best(exclude: set[str], report) -> tuple[str | None, str]:
    """Load the best variant not excluded (or the linked CPU code) and run the probe here.

    ``report(variant)`` is called before the probe runs, so a parent that sees this
    process die knows which variant killed it.
    """
    from . import native

    native.install()
    if backends.dynamic():
        candidates = [v for v in backends.variants() if v.name not in exclude]
        if not candidates:
            raise LookupError("no CPU variant left")
        name: str | None = candidates[0].name
    else:
        name = None
    report(name)
    try:
        backends.load(name)
    except OSError as e:
        raise _DidNotLoad(str(e)) from None
    with tempfile.TemporaryDirectory(prefix="minutely-cpucheck-") as tmp:
        run_probe(write_probe_model(Path(tmp) / "probe.gguf"))
    return name, backends.system_info()


def _child(conn, exclude: list[str]) -> None:
    """Entry point of one check process (multiprocessing spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        name, info = _try_best(set(exclude), lambda v: conn.send(("trying", v)))
        conn.send(("ok", name, info))
    except LookupError:
        conn.send(("none",))
    except _DidNotLoad as e:
        conn.send(("unloadable", str(e)))
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))


# -- the verdict ----------------------------------------------------------------------------


def fingerprint() -> str:
    """This CPU and these llama.cpp libraries: a change of either means a new check."""
    import llama_cpp

    h = hashlib.sha256(backends.cpu_model().encode())
    h.update(str(getattr(llama_cpp, "__version__", "")).encode())
    folder = backends.lib_dir()
    for p in sorted(folder.glob("*ggml*")) + sorted(folder.glob("*llama*")):
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def verdict_path() -> Path:
    env = os.environ.get(ENV_FILE)
    if env:
        return Path(env)
    from ..paths import data_dir

    return data_dir() / "cpu-check.json"


def _read_cached(fp: str) -> Verdict | None:
    try:
        data = json.loads(verdict_path().read_text())
        if data.get("fingerprint") != fp:
            return None
        fields = {k: data[k] for k in ("variant", "ok", "failed", "system_info", "seconds") if k in data}
        return Verdict(**fields, fingerprint=fp, cached=True)
    except (OSError, ValueError, TypeError):
        return None


def _store(v: Verdict) -> None:
    from ..fsutil import atomic_write_text

    data = asdict(v)
    data.pop("cached")
    data["cpu"] = backends.cpu_model().split("|")[0]
    data["checked"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        path = verdict_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1))
    except OSError as e:  # a read-only or full disk: check again next time
        log.warning("could not keep the CPU check's verdict: %s", e)


def _is_fault(code: int | None) -> bool:
    if code is None:
        return False
    if sys.platform == "win32":
        return (code & 0xFFFFFFFF) == _WIN_ILLEGAL
    return code < 0 and -code in _FAULTS


def _how(code: int | None) -> str:
    if code is None:
        return "did not finish"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _unsupported(v: Verdict) -> CPUUnsupported:
    cpu = backends.cpu_model().split("|")[0] or "this CPU"
    if v.variant is None and not v.failed.get("all"):
        fix = ("install the current Minutely package (built for every CPU)"
               if getattr(sys, "frozen", False) else
               "rebuild it portable: REBUILD_LLAMA=1 bash scripts/setup.sh")
        return CPUUnsupported(f"llama.cpp in this installation was compiled for another CPU: its "
                              f"quantized matrix product dies ({v.failed.get('linked', 'SIGILL')}) on "
                              f"{cpu}; {fix}")
    tried = ", ".join(f"{k} {w}" for k, w in v.failed.items() if k != "all")
    return CPUUnsupported(f"no CPU variant of llama.cpp runs a quantized matrix product on {cpu} "
                          f"(tried: {tried or 'none scored above 0'}); set {backends.ENV_VARIANT} "
                          f"to one of them, or build llama.cpp for this machine (README: Your CPU, and GPU builds)")


def _check_in_children(fp: str, timeout: float) -> Verdict:
    ctx = mp.get_context("spawn")
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    while True:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, sorted(failed)), name="minutely-cpucheck",
                           daemon=True)
        proc.start()
        child.close()
        trying: str | None = "?"
        outcome = None
        deadline = time.monotonic() + timeout
        try:
            while outcome is None:
                if parent.poll(0.05):
                    try:
                        msg = parent.recv()
                    except (EOFError, OSError):
                        break
                    if msg[0] == "trying":
                        trying = msg[1]
                    else:
                        outcome = msg
                elif not proc.is_alive() or time.monotonic() > deadline:
                    break
        finally:
            parent.close()
        if outcome is None:  # the pipe closed: the child is exiting (or hung)
            proc.join(max(0.5, deadline - time.monotonic()))
        if outcome is None and proc.is_alive():  # too slow: not a verdict on the CPU
            proc.kill()
            proc.join(5)
            raise ModelError(f"the CPU check did not finish in {timeout:.0f} s "
                             f"(machine very busy?); it runs again at the next load")
        proc.join(10)
        if outcome is not None and outcome[0] == "ok":
            return Verdict(outcome[1], True, failed, outcome[2], time.perf_counter() - t0, fp)
        if outcome is not None and outcome[0] == "none":
            failed.setdefault("all", "struck off")
            return Verdict(None, False, failed, "", time.perf_counter() - t0, fp)
        if outcome is not None and outcome[0] == "unloadable" and trying not in (None, "?"):
            log.info("llama.cpp's CPU code %s did not load: %s", trying, outcome[1])
            failed[trying] = "did not load"
            continue
        if outcome is not None:  # llama.cpp refused: a broken installation, not this CPU
            raise ModelError(f"the CPU check failed: {outcome[1]}")
        code = proc.exitcode
        if not _is_fault(code) or trying == "?":
            raise ModelError(f"the CPU check's process {_how(code)}"
                             f"{' with variant ' + trying if trying and trying != '?' else ''}; "
                             f"it runs again at the next load")
        log.info("llama.cpp's CPU code %s died with %s on this machine: struck off",
                    trying or "(linked)", _how(code))
        failed[trying or "linked"] = _how(code)
        if trying is None:  # a build with one CPU code: nothing else to try
            return Verdict(None, False, failed, "", time.perf_counter() - t0, fp)


def check(*, in_process: bool = False, use_cache: bool = True,
          timeout: float = CHECK_TIMEOUT) -> Verdict:
    """The CPU code to use on this machine (checked now, or the kept verdict).

    ``in_process`` runs the probe in this process instead of children (the
    self-test under an emulated CPU: the process that runs the model must be
    the emulated one); a fault then kills this process. Raises CPUUnsupported.
    """
    global _memo
    with _lock:
        forced = os.environ.get(backends.ENV_VARIANT, "").strip()
        if forced:
            try:
                backends.find_variant(forced)
            except ValueError as e:
                raise CPUUnsupported(f"{backends.ENV_VARIANT}: {e}") from None
            return Verdict(forced, True, {}, "", 0.0, "", cached=True)
        if use_cache and _memo is not None:
            return _memo
        fp = fingerprint()
        v = _read_cached(fp) if use_cache else None
        if v is None:
            if in_process or mp.current_process().daemon:
                t0 = time.perf_counter()
                name, info = _try_best(set(), lambda _v: None)
                v = Verdict(name, True, {}, info, time.perf_counter() - t0, fp)
            else:
                v = _check_in_children(fp, timeout)
            _store(v)
            log.info("CPU check: %s", v.summary() if v.ok else v.failed)
        _memo = v
    if not v.ok:
        raise _unsupported(v)
    return v


def ensure_backend(*, in_process: bool = False) -> backends.Loaded:
    """Load the CPU code that the check found to run here (once per process)."""
    done = backends.loaded()
    if done is not None:
        return done
    return load(check(in_process=in_process).variant)


def load(variant: str | None) -> backends.Loaded:
    """backends.load, with ggml's refusal of a variant this CPU cannot run (its score is 0)
    as CPUUnsupported (the model process loads the variant its parent's check chose)."""
    try:
        return backends.load(variant)
    except OSError as e:
        raise CPUUnsupported(f"{e}: this CPU lacks its instructions") from None


def forget() -> None:
    """Drop this process's memo (tests; a kept file is not touched)."""
    global _memo
    with _lock:
        _memo = None


__all__ = ["CPUUnsupported", "Verdict", "check", "ensure_backend", "fingerprint", "load", "run_probe",
           "verdict_path", "write_probe_model"]
