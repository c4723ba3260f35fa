"""MNIST-style IDX files (optionally gzipped), parsed with NumPy.

Layout: a big-endian magic ``0x000008DD`` (``08`` = unsigned byte, ``DD`` = number of
dimensions), one big-endian uint32 per dimension, then the values.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


def read_idx(path: Path, magic: int) -> np.ndarray:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; help: run `snn data fetch`") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: truncated or not a gzip file ({e})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: magic number {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, but its header {dims} needs {expected}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(m, 28, 28)`` and labels ``(m,)`` of ``prefix`` (``train`` or ``t10k``)."""
    x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC)
    y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC).astype(np.int64)
    if len(x) != len(y):
        raise DataError(f"{folder}: {len(x)} {prefix} images but {len(y)} labels")
    if y.size and y.max() > 9:
        raise DataError(f"{folder}: {prefix} labels must be 0..9, found {y.max()}")
    return x, y
