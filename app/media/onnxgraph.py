"""A minimal writer of ONNX models (protobuf wire format), so numpy weights can run on onnxruntime
without the ``onnx`` package: float32 and int64 tensors, nodes with int / float / string / ints attributes, graph
inputs and outputs of float32 with named or fixed dimensions. Only what segmentation.py needs."""

from __future__ import annotations

import struct

import numpy as np

FLOAT, INT64 = 1, 7  # TensorProto data types


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _str(field: int, s: str) -> bytes:
    return _bytes(field, s.encode())


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n if n >= 0 else n + (1 << 64))


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto of a float32 array (raw data, little-endian)."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return (b"".join(_int(1, int(d)) for d in a.shape) + _int(2, FLOAT) + _str(8, name)
            + _bytes(9, a.tobytes()))


def int64s(name: str, values: list[int]) -> bytes:
    """TensorProto of a 1-D int64 array (a Reshape's shape)."""
    a = np.asarray(values, dtype="<i8")
    return _int(1, len(a)) + _int(2, INT64) + _str(8, name) + _bytes(9, a.tobytes())


def _attribute(name: str, value: int | float | str | list[int] | tuple[int, ...]) -> bytes:
    if isinstance(value, str):
        return _str(1, name) + _bytes(4, value.encode()) + _int(20, 3)     # STRING
    if isinstance(value, bool | int):
        return _str(1, name) + _int(3, int(value)) + _int(20, 2)           # INT
    if isinstance(value, float):
        return _str(1, name) + _key(2, 5) + struct.pack("<f", value) + _int(20, 1)  # FLOAT
    return _str(1, name) + b"".join(_int(8, int(v)) for v in value) + _int(20, 7)  # INTS


def node(op: str, inputs: list[str], outputs: list[str], **attrs: int | float | str | list[int]) -> bytes:
    """NodeProto; an empty input name is an omitted optional input."""
    return (b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
            + _str(3, outputs[0]) + _str(4, op)
            + b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items()))


def value(name: str, dims: list[int | str]) -> bytes:
    """ValueInfoProto of a float32 tensor; a str dimension is symbolic."""
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _str(1, name) + _bytes(2, _bytes(1, _int(1, FLOAT) + _bytes(2, shape)))


def model(nodes: list[bytes], initializers: list[bytes], inputs: list[bytes], outputs: list[bytes],
          opset: int = 17) -> bytes:
    """Serialized ModelProto (IR version 8) of one graph."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _str(2, "g")
             + b"".join(_bytes(5, t) for t in initializers)
             + b"".join(_bytes(11, i) for i in inputs) + b"".join(_bytes(12, o) for o in outputs))
    return _int(1, 8) + _str(2, "minutely") + _bytes(7, graph) + _bytes(8, _str(1, "") + _int(2, opset))
