"""Generic tables: CSV (numbers, label in the last column) and ``.npz`` archives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Preprocessing

NPZ_KEYS = ("x_train", "y_train")


def _classes(*label_arrays) -> tuple[str, ...]:
    top = max(int(y.max()) for y in label_arrays if y is not None and y.size)
    return tuple(str(i) for i in range(top + 1))


def _labels(y, path) -> np.ndarray:
    if not np.all(np.equal(np.mod(y, 1), 0)) or np.any(y < 0):
        raise DataError(f"{path}: labels must be whole numbers >= 0")
    return y.astype(np.int64)


def load_csv(path: Path) -> Dataset:
    """A CSV of numbers, one example a row, the label in the last column; a header row is skipped."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=_header_rows(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a numeric CSV table ({e})") from None
    if table.shape[1] < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column")
    y = _labels(table[:, -1], path)
    return Dataset(path.stem, table[:, :-1], y, _classes(y), Preprocessing("table", (table.shape[1] - 1,)))


def _header_rows(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    try:
        [float(v) for v in first.split(",")]
        return 0
    except ValueError:
        return 1


def load_npz(path: Path) -> Dataset:
    """An ``.npz`` with ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; it has {sorted(arrays)}")
    y = _labels(arrays["y_train"].reshape(-1), path)
    y_test = arrays.get("y_test")
    y_test = None if y_test is None else _labels(y_test.reshape(-1), path)
    x = arrays["x_train"]
    return Dataset(
        path.stem, x, y, _classes(y, y_test), Preprocessing("table", x.shape[1:]),
        x_test=arrays.get("x_test"), y_test=y_test,
    )
