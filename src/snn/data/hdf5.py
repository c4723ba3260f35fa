"""The cat vs non-cat HDF5 files of the classic course."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError


def read_h5_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``{split}_set_x`` (m, 64, 64, 3) uint8, ``{split}_set_y`` (m,), and the class names."""
    if not path.exists():
        raise DataError(f"{path}: file not found; help: run `snn data fetch catvnoncat`")
    try:
        with h5py.File(path, "r") as f:
            wanted = (f"{split}_set_x", f"{split}_set_y", "list_classes")
            missing = [k for k in wanted if k not in f]
            if missing:
                raise DataError(f"{path}: missing datasets {missing}; it has {sorted(f)}")
            x, y = f[wanted[0]][()], f[wanted[1]][()]
            classes = tuple(c.decode() for c in f["list_classes"][()])
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt: {e})") from None
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if x.ndim != 4 or len(x) != len(y):
        raise DataError(f"{path}: images of shape {x.shape} do not match {len(y)} labels")
    return x, y, classes
