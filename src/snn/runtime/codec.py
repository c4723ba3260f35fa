"""Arrays as ``.npy`` bytes: dtype and shape in a header, then the raw data. Never pickle.

Decoding returns a read-only view of the bytes, without copying, so a large input
(the training images) costs nothing to read back from an in-process store.
"""

from __future__ import annotations

import io
import json

import numpy as np


def encode(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be stored: only numeric arrays travel through the store")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    return header.getvalue() + array.tobytes(order=order)


def decode(data: bytes) -> np.ndarray:
    stream = io.BytesIO(data)
    major, minor = np.lib.format.read_magic(stream)
    if (major, minor) != (1, 0):
        raise ValueError(f"unsupported .npy version {major}.{minor}")
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=10_000)
    if dtype.hasobject:
        raise ValueError("refusing an object array: the store never holds pickled data")
    flat = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def encode_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_json(data: bytes):
    return json.loads(data)
