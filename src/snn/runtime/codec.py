"""Arrays as ``.npy`` bytes: dtype and shape in a header, then the raw data. Never pickle.

Decoding returns a read-only view of the bytes, without copying, so a large input
(the training images) costs nothing to read back from an in-process store. Headers
repeat from step to step (same shapes, same dtypes), so both directions keep the
few they have seen instead of formatting and parsing them every time.
"""

from __future__ import annotations

import functools
import io
import json

import numpy as np

MAGIC = b"\x93NUMPY\x01\x00"


@functools.lru_cache(maxsize=1024)
def _header(descr: str, fortran: bool, shape: tuple) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return out.getvalue()


@functools.lru_cache(maxsize=1024)
def _parse(header: bytes) -> tuple[np.dtype, tuple, bool]:
    stream = io.BytesIO(header)
    np.lib.format.read_magic(stream)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=10_000)
    if dtype.hasobject:
        raise ValueError("refusing an object array: the store never holds pickled data")
    return dtype, shape, fortran


def encode(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be stored: only numeric arrays travel through the store")
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    body = array.T if fortran else np.ascontiguousarray(array)
    descr = np.lib.format.dtype_to_descr(array.dtype)
    return b"".join((_header(descr, bool(fortran), array.shape), body.data))  # one copy


def decode(data: bytes) -> np.ndarray:
    if data[:8] != MAGIC:
        raise ValueError("not a version 1.0 .npy array")
    length = 10 + int.from_bytes(data[8:10], "little")
    dtype, shape, fortran = _parse(bytes(data[:length]))
    flat = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=length)
    return flat.reshape(shape, order="F" if fortran else "C")


def encode_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_json(data: bytes):
    return json.loads(data)
