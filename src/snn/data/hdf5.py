"""The cat vs non-cat HDF5 files of the classic course.

An HDF5 file can name other files (external links, external or virtual storage) and
declare datasets far larger than itself (compressed, or never written): each dataset's
link, storage, dtype and size are checked before a byte of it is read. Only plain numbers
and fixed-length strings are read: variable-length data lives in a heap whose corruption
can make the HDF5 library loop forever.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from .checks import (MAX_CLASSES, MAX_FILE_BYTES, check_class_name, check_dtype, check_labels, check_nbytes, reason,
                     regular_file)

# What h5py raises on a file that is not HDF5, is truncated, or holds what it cannot convert.
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError)


def read_h5_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``{split}_set_x`` (m, h, w[, c]) uint8, ``{split}_set_y`` (m,) labels, and the class names."""
    regular_file(path, MAX_FILE_BYTES, "run `snn data fetch catvnoncat`")
    try:
        with h5py.File(path, "r") as f:
            wanted = (f"{split}_set_x", f"{split}_set_y", "list_classes")
            missing = [k for k in wanted if k not in f]
            if missing:
                raise DataError(f"{path}: missing datasets {missing}; it has {_names(f)}")
            x, y, names = _read(f, wanted[0], path), _read(f, wanted[1], path), _read(f, wanted[2], path, "S")
            classes = _class_names(names, path)
    except H5_ERRORS as e:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt: {reason(e)})") from None
    where = f"{path}: {wanted[0]}"
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or 0 in x.shape[1:]:
        raise DataError(f"{where}: {x.dtype} images of shape {x.shape}; allowed: uint8 (m, height, width[, channels])")
    if y.ndim == 2 and y.shape[0] == 1:
        y = y[0]  # the course's (1, m) row of labels
    y = check_labels(y, len(classes), f"{path}: {wanted[1]}")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images, but {wanted[1]} has {len(y)} labels")
    return x, y, classes


def _names(f: h5py.File, limit: int = 10) -> str:
    names = sorted(f)
    return str(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read(f: h5py.File, key: str, path: Path, kind: str = "") -> np.ndarray:
    """A dataset stored in this file, of a bounded size and of numbers (or of ``kind``), read into memory."""
    where = f"{path}: {key}"
    if not isinstance(f.get(key, getlink=True), h5py.HardLink) or not isinstance(obj := f[key], h5py.Dataset):
        raise DataError(f"{where}: a link or a group; allowed: a dataset stored in this file")
    if obj.external or obj.is_virtual:
        raise DataError(f"{where}: its data lives in other files; allowed: data stored in this file")
    if kind and obj.dtype.kind != kind:
        raise DataError(f"{where}: dtype {obj.dtype}; allowed: fixed-length strings, like the course's |S7")
    if not kind:
        check_dtype(obj.dtype, where)
    check_nbytes(obj.shape or (), obj.dtype.itemsize, where)
    return np.asarray(obj[()])


def _class_names(names: np.ndarray, path: Path) -> tuple[str, ...]:
    where = f"{path}: list_classes"
    if names.ndim != 1 or not 2 <= len(names) <= MAX_CLASSES:
        raise DataError(f"{where}: {names.dtype} of shape {names.shape}; "
                        f"allowed: a list of 2..{MAX_CLASSES} names")
    try:
        texts = [bytes(n).decode() for n in names]
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: a class name is not UTF-8 ({reason(e)})") from None
    return tuple(check_class_name(name, where) for name in texts)
