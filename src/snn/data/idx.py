"""MNIST-style IDX files (optionally gzipped), parsed with NumPy.

Layout: a big-endian magic ``0x000008DD`` (``08`` = unsigned byte, ``DD`` = number of
dimensions), one big-endian uint32 per dimension, then the values.

The header is read first: its dimensions give the exact number of bytes that follow,
and no more than that (plus one, to notice extra data) is ever decompressed, so a
gzip bomb costs at most what its header claims, itself bounded by ``max_bytes``.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import MAX_FILE_BYTES, check_labels, reason, regular_file

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
FETCH_HINT = "run `snn data fetch`"


def read_idx(path: Path, magic: int, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """The array of an IDX file whose magic must be ``magic``; at most ``max_bytes`` of values."""
    regular_file(path, max_bytes, FETCH_HINT)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            dims = _header(f, path, magic)
            size = math.prod(dims)
            if size > max_bytes:
                raise DataError(f"{path}: its header {dims} claims {size} bytes; allowed: at most {max_bytes}")
            raw = f.read(size + 1)  # one byte past the header's count tells that there is more
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: truncated or not a gzip file ({reason(e)})") from None
    header = 4 + 4 * len(dims)
    if len(raw) > size:
        raise DataError(f"{path}: more than the {header + size} bytes its header {dims} needs; "
                        "help: fetch the file again")
    if len(raw) < size:
        raise DataError(f"{path}: {header + len(raw)} bytes, but its header {dims} needs {header + size}")
    return np.frombuffer(raw, np.uint8).reshape(dims)


def _header(f, path: Path, magic: int) -> tuple[int, ...]:
    ndim = magic & 0xFF
    head = f.read(4 + 4 * ndim)
    if len(head) >= 4 and int.from_bytes(head[:4], "big") != magic:
        raise DataError(f"{path}: magic number {int.from_bytes(head[:4], 'big'):#010x}, expected {magic:#010x}")
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: only {len(head)} bytes, too short for an IDX header")
    return tuple(int.from_bytes(head[i : i + 4], "big") for i in range(4, len(head), 4))


def load_idx_pair(folder: Path, prefix: str, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(m, 28, 28)`` and labels ``(m,)`` of ``prefix`` (``train`` or ``t10k``)."""
    x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC)
    labels = folder / f"{prefix}-labels-idx1-ubyte.gz"
    y = check_labels(read_idx(labels, LABELS_MAGIC), n_classes, str(labels))
    if len(x) != len(y):
        raise DataError(f"{folder}: {len(x)} {prefix} images but {len(y)} labels")
    return x, y
