"""llama.cpp's compute backends: which CPU code runs, chosen on the user's machine.

Minutely's portable build of llama-cpp-python (scripts/setup.sh, packaging/)
compiles llama.cpp with ``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS``: the
CPU backend is one shared library per instruction-set level, next to libllama
(``libggml-cpu-x64.so``, ``-sse42``, ``-haswell``, ``-skylakex``, ``-icelake``,
``-sapphirerapids``, ...), each exporting ``ggml_backend_score()`` (0 when this
CPU lacks what the variant was compiled for). Nothing is registered until a
backend is loaded, so an installation built on one machine runs on another CPU.

ggml's own ``ggml_backend_load_all()`` would load the variant with the highest
cpuid score. A CPU can advertise instructions that still fault: AMX tiles in a
VM whose hypervisor does not hand the tile state to the guest die with SIGILL in
``ggml_backend_amx_mul_mat`` on the first quantized matrix product. So Minutely
loads the CPU variant itself: the best-scoring one that passed the quantized
check of ``cpucheck.py`` on this machine (cached per machine), or the one named
by ``MINUTELY_CPU_VARIANT``. GPU backends (CUDA, Vulkan, Metal, ... built as
modules beside it) are loaded as they are.

A build without ``GGML_BACKEND_DL`` (someone's own ``-DGGML_NATIVE=ON`` build,
or a GPU build made without it) links its CPU backend: there is nothing to load,
and the check still says whether it runs here.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("minutely.engine.backends")

ENV_VARIANT = "MINUTELY_CPU_VARIANT"

_lock = threading.Lock()
_loaded: Loaded | None = None


@dataclass(frozen=True)
class Variant:
    name: str      # e.g. "haswell"
    path: Path
    score: int     # ggml_backend_score(): 0 = this CPU cannot run it

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Loaded:
    variant: str | None      # the CPU variant loaded; None for a build that links its CPU code
    gpu: tuple[str, ...]     # GPU backend modules loaded (e.g. "cuda")


def _ext() -> str:
    return ".dll" if sys.platform == "win32" else ".so"


def _prefix() -> str:
    return "" if sys.platform == "win32" else "lib"


def lib_dir() -> Path:
    """The folder llama-cpp-python loaded libllama from (the bundle's copy when frozen)."""
    import llama_cpp.llama_cpp as lc

    return Path(lc._base_path)


def _registry_path() -> Path:
    """The libggml file that libllama itself loaded.

    A wheel cannot hold symbolic links: libggml.so, libggml.so.0 and libggml.so.0.N
    are three copies, and libllama loads the one its DT_NEEDED names (the SONAME).
    Opening another copy would give a second, empty backend registry.
    """
    folder = lib_dir()
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    path = line.split(maxsplit=5)[-1].strip()
                    if path.startswith(str(folder)) and Path(path).name.startswith("libggml.so"):
                        return Path(path)
        except OSError:
            pass
        versioned = sorted(folder.glob("libggml.so.*"), key=lambda p: len(p.name))
        if versioned:
            return versioned[0]
    if sys.platform == "darwin":
        versioned = sorted(folder.glob("libggml.*dylib"), key=lambda p: len(p.name))
        if versioned:
            return versioned[0]
    return folder / f"{_prefix()}ggml{_ext()}"


def _ggml() -> ctypes.CDLL:
    """libggml: the backend registry (already loaded as a dependency of libllama)."""
    lib = ctypes.CDLL(str(_registry_path()))
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    return lib


def variant_paths(folder: Path | None = None) -> list[Path]:
    """The CPU variant libraries of a dynamic-backend build; [] for a linked build."""
    folder = folder or lib_dir()
    head, ext = f"{_prefix()}ggml-cpu-", _ext()
    return sorted(p for p in folder.glob(f"{head}*{ext}*") if p.name.endswith(ext))


def _variant_name(path: Path) -> str:
    return path.name[len(f"{_prefix()}ggml-cpu-"):-len(_ext())]


def dynamic() -> bool:
    """Whether this llama.cpp build chooses its CPU code when it loads (GGML_BACKEND_DL)."""
    return bool(variant_paths())


def score(path: Path) -> int:
    """The variant's own verdict on this CPU (cpuid), as ggml_backend_load_best asks it."""
    try:
        lib = ctypes.CDLL(str(path))
        fn = lib.ggml_backend_score
    except (OSError, AttributeError) as e:
        log.warning("cannot score %s: %s", path.name, e)
        return 0
    fn.restype = ctypes.c_int
    return int(fn())


def variants() -> list[Variant]:
    """Every CPU variant this CPU claims to run, best first."""
    found = [Variant(_variant_name(p), p, score(p)) for p in variant_paths()]
    return sorted((v for v in found if v.score > 0), key=lambda v: -v.score)


def find_variant(name: str) -> Path:
    for p in variant_paths():
        if _variant_name(p) == name:
            return p
    known = ", ".join(_variant_name(p) for p in variant_paths()) or "none: this build links its CPU code"
    raise ValueError(f"no CPU variant {name!r} in this llama.cpp build (there are: {known})")


def _gpu_modules() -> list[Path]:
    """Backend modules other than the CPU's (libggml-cuda.so, libggml-vulkan.so, ...)."""
    head, ext = f"{_prefix()}ggml-", _ext()
    skip = {"base", "cpu"}
    out = []
    for p in sorted(lib_dir().glob(f"{head}*{ext}")):
        name = p.name[len(head):-len(ext)]
        if name not in skip and not name.startswith("cpu-"):
            out.append(p)
    return out


def loaded() -> Loaded | None:
    return _loaded


def load(variant: str | None) -> Loaded:
    """Register the backends: the named CPU variant and any GPU modules (once per process).

    ``variant`` None means a build that links its CPU backend (nothing to load).
    """
    global _loaded
    with _lock:
        if _loaded is not None:
            if _loaded.variant != variant:
                log.warning("CPU variant %s already loaded; %s not loaded", _loaded.variant, variant)
            return _loaded
        from . import native

        native.install()  # ggml logs as it loads a backend: into Python logging, not stderr
        gpu: list[str] = []
        if variant is not None:
            ggml = _ggml()
            for p in _gpu_modules():
                if ggml.ggml_backend_load(str(p).encode()):
                    gpu.append(p.stem.removeprefix(f"{_prefix()}ggml-"))
                else:
                    log.warning("the GPU backend %s did not load (driver or runtime missing?)", p.name)
            if not ggml.ggml_backend_load(str(find_variant(variant)).encode()):
                raise OSError(f"llama.cpp's CPU variant {variant} did not load")
        _loaded = Loaded(variant, tuple(gpu))
        return _loaded


def system_info() -> str:
    """llama.cpp's own line of the CPU features its loaded CPU code uses."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def features(info: str | None = None) -> list[str]:
    """The features the loaded CPU code uses (``AVX2``, ``AVX512``, ...), from llama.cpp's
    system-info line (this process's, or ``info`` as another process reported it)."""
    out = []
    for part in (system_info() if info is None else info).split("|"):
        k, _, v = part.partition("=")
        k = k.split(":")[-1].strip()
        if v.strip() == "1" and k:
            out.append(k)
    return out


def describe() -> str:
    """One line: the variant and its features, for the self-test and the logs."""
    state = _loaded
    which = "not loaded" if state is None else (
        f"variant {state.variant}" if state.variant else "linked CPU code (not a portable build)")
    gpu = f", GPU: {', '.join(state.gpu)}" if state and state.gpu else ""
    return f"llama.cpp CPU: {which} ({' '.join(features()) or 'no SIMD'}){gpu}"


def cpu_model() -> str:
    """The CPU's marketing name and the kernel's feature flags (Linux), else what Python knows."""
    import platform

    name, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k in ("model name", "Hardware", "cpu model") and not name:
                    name = v.strip()
                elif k in ("flags", "Features") and not flags:
                    flags = v.strip()
                if name and flags:
                    break
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()}|{flags}"


__all__ = ["ENV_VARIANT", "Loaded", "Variant", "cpu_model", "describe", "dynamic", "features",
           "find_variant", "lib_dir", "load", "loaded", "system_info", "variants"]
