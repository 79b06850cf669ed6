"""Read a torch zip checkpoint's state dict as numpy arrays, without torch.

A torch checkpoint is a zip: a pickle (``data.pkl``) whose tensors live in ``data/N``. A
restricted unpickler rebuilds tensors as numpy arrays; every other class becomes an inert
placeholder, so nothing in the file is executed. (The same reader as ``segmentation.py`` on
the overlap branch; one of the two can import the other once both are merged.)
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

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
