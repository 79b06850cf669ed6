"""Validate a Gemma 4 model + mmproj pair from their GGUF headers, before loading.

Loading a 7 GB file into llama.cpp is a poor way to find out it is the wrong
one: llama.cpp may abort the whole process on a bad file. So the headers are
read here (a few KB to a few MB, never the tensor data) and every check that
can fail says why in one line: missing file, not a GGUF, truncated, wrong
architecture, a projector without audio or vision, a projector built for a
model of another size.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ModelError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF value types
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, \
    _UINT64, _INT64, _FLOAT64 = range(13)
_SCALAR = {
    _UINT8: "<B", _INT8: "<b", _UINT16: "<H", _INT16: "<h", _UINT32: "<I",
    _INT32: "<i", _FLOAT32: "<f", _BOOL: "<?", _UINT64: "<Q", _INT64: "<q",
    _FLOAT64: "<d",
}
# Arrays longer than this are skipped over, not kept (tokenizer vocabularies).
_KEEP_ARRAY_MAX = 64

MODEL_ARCH = "gemma4"
VISION_PROJECTOR = "gemma4uv"
AUDIO_PROJECTOR = "gemma4ua"


class _Truncated(Exception):
    pass


@dataclass
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    n_tensors: int
    file_size: int
    data_size_needed: int  # bytes the file must have for all its tensors
    tensor_names: list[str] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _Truncated()
    return b


def _scalar(f: BinaryIO, t: int) -> Any:
    fmt = _SCALAR[t]
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", _read(f, 8))
    if n > 1 << 30:
        raise ValueError("implausible string length")
    return _read(f, n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, t: int) -> Any:
    if t in _SCALAR:
        return _scalar(f, t)
    if t == _STRING:
        return _string(f)
    if t == _ARRAY:
        (et,) = struct.unpack("<I", _read(f, 4))
        (n,) = struct.unpack("<Q", _read(f, 8))
        if et in _SCALAR:
            size = struct.calcsize(_SCALAR[et])
            if n > _KEEP_ARRAY_MAX:
                f.seek(n * size, os.SEEK_CUR)
                return _LongArray(n)
            return [_scalar(f, et) for _ in range(n)]
        if et == _STRING:
            if n > _KEEP_ARRAY_MAX:
                for _ in range(n):
                    (m,) = struct.unpack("<Q", _read(f, 8))
                    f.seek(m, os.SEEK_CUR)
                return _LongArray(n)
            return [_string(f) for _ in range(n)]
        if et == _ARRAY:
            return [_value(f, _ARRAY) for _ in range(n)]
        raise ValueError(f"unknown array element type {et}")
    raise ValueError(f"unknown value type {t}")


@dataclass(frozen=True)
class _LongArray:
    """Placeholder for an array that was skipped; keeps its length."""
    length: int

    def __len__(self) -> int:
        return self.length


def _tensor_nbytes(ggml_type: int, dims: list[int]) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown tensor type {ggml_type}") from None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def read_gguf(path: str | os.PathLike) -> GGUFInfo:
    """Read a GGUF header. Raises ModelError with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"file not found: {p}")
    if p.is_dir():
        raise ModelError(f"expected a .gguf file, got a folder: {p}")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
            if magic != GGUF_MAGIC:
                raise ModelError(f"not a GGUF model file: {p.name}")
            (version,) = struct.unpack("<I", _read(f, 4))
            if version not in (2, 3):
                raise ModelError(f"unsupported GGUF version {version}: {p.name}")
            n_tensors, n_kv = struct.unpack("<QQ", _read(f, 16))
            if n_tensors > 1_000_000 or n_kv > 1_000_000:
                raise ModelError(f"corrupt GGUF header: {p.name}")
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                key = _string(f)
                (t,) = struct.unpack("<I", _read(f, 4))
                meta[key] = _value(f, t)
            names: list[str] = []
            end = 0
            for _ in range(n_tensors):
                name = _string(f)
                (n_dims,) = struct.unpack("<I", _read(f, 4))
                if n_dims > 8:
                    raise ValueError("implausible tensor rank")
                dims = list(struct.unpack(f"<{n_dims}Q", _read(f, 8 * n_dims)))
                ggml_type, offset = struct.unpack("<IQ", _read(f, 12))
                end = max(end, offset + _tensor_nbytes(ggml_type, dims))
                names.append(name)
            align = int(meta.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
            pos = f.tell()
            data_start = (pos + align - 1) // align * align
    except _Truncated:
        raise ModelError(f"truncated GGUF file (header cut short at {size} bytes): {p.name}") from None
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise ModelError(f"corrupt GGUF file ({e}): {p.name}") from None
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror or e}") from None
    needed = data_start + end
    if size < needed:
        raise ModelError(
            f"truncated GGUF file: {p.name} has {size:,} of {needed:,} bytes "
            f"({100 * size / needed:.0f}%); download or copy it again")
    return GGUFInfo(p, version, meta, n_tensors, size, needed, names)


@dataclass
class ModelPairInfo:
    model: GGUFInfo
    mmproj: GGUFInfo | None
    n_embd: int
    has_audio: bool
    has_vision: bool
    has_chat_template: bool


def check_model(path: str | os.PathLike, require_arch: str | None = MODEL_ARCH) -> GGUFInfo:
    info = read_gguf(path)
    if info.get("general.type") == "mmproj" or info.arch == "clip":
        raise ModelError(f"{info.path.name} is a projector (mmproj) file, not the language model")
    if require_arch and info.arch != require_arch:
        raise ModelError(
            f"wrong model architecture '{info.arch or 'unknown'}' in {info.path.name}: "
            f"Minutely needs a Gemma 4 model ('{require_arch}')")
    if not isinstance(info.get(f"{info.arch}.embedding_length"), int):
        raise ModelError(f"{info.path.name} has no embedding length; not a usable language model")
    return info


def check_mmproj(path: str | os.PathLike, n_embd: int | None = None,
                 require: tuple[str, ...] = ("audio", "vision")) -> GGUFInfo:
    info = read_gguf(path)
    name = info.path.name
    if info.arch != "clip" and info.get("general.type") != "mmproj":
        raise ModelError(f"{name} is not a projector (mmproj) file (architecture '{info.arch}')")
    kinds = {"audio": ("clip.has_audio_encoder", "clip.audio.projector_type", AUDIO_PROJECTOR),
             "vision": ("clip.has_vision_encoder", "clip.vision.projector_type", VISION_PROJECTOR)}
    for kind in require:
        flag, ptype_key, want = kinds[kind]
        if not info.get(flag, False):
            raise ModelError(f"{name} has no {kind} projector; Minutely needs one with audio and vision")
        ptype = info.get(ptype_key) or info.get("clip.projector_type")
        if ptype != want:
            raise ModelError(f"{name} has {kind} projector '{ptype}', expected Gemma 4's '{want}'")
        if n_embd is not None:
            sect = "audio" if kind == "audio" else "vision"
            proj = info.get(f"clip.{sect}.projection_dim")
            if proj is not None and int(proj) != int(n_embd):
                raise ModelError(
                    f"{name} was made for a model of width {proj}, but the model has width "
                    f"{n_embd}: the projector does not belong to this model")
    return info


def check_pair(model: str | os.PathLike, mmproj: str | os.PathLike | None,
               require_arch: str | None = MODEL_ARCH) -> ModelPairInfo:
    """Validate a model (and its projector, if given) without loading either."""
    m = check_model(model, require_arch)
    n_embd = int(m.get(f"{m.arch}.embedding_length"))
    mp = None
    has_audio = has_vision = False
    if mmproj is not None:
        mp = check_mmproj(mmproj, n_embd)
        has_audio = bool(mp.get("clip.has_audio_encoder"))
        has_vision = bool(mp.get("clip.has_vision_encoder"))
    return ModelPairInfo(m, mp, n_embd, has_audio, has_vision,
                         bool(m.get("tokenizer.chat_template")))


DRAFTER_ARCH = "gemma4-assistant"


def check_drafter(path: str | os.PathLike, n_embd: int | None = None) -> GGUFInfo:
    """A Multi-Token-Prediction drafter (arch ``gemma4-assistant``) for a model of width ``n_embd``."""
    info = read_gguf(path)
    name = info.path.name
    if info.arch != DRAFTER_ARCH:
        raise ModelError(f"{name} is not a Gemma 4 drafter (architecture '{info.arch or 'unknown'}', "
                         f"expected '{DRAFTER_ARCH}')")
    out = info.get(f"{DRAFTER_ARCH}.embedding_length_out")
    if not isinstance(out, int):
        raise ModelError(f"{name} does not say which model width it drafts for")
    if n_embd is not None and out != int(n_embd):
        raise ModelError(f"{name} drafts for a model of width {out}, but the model has width "
                         f"{n_embd}: the drafter does not belong to this model")
    return info
