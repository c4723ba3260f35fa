"""What every dataset file must satisfy: bounded sizes, usable arrays and labels, consistent splits.

Every loader funnels what it reads through these checks, so whatever is wrong with a file
(too big, the wrong type, NaN, a label of 1e9, a split without labels) the answer is one
``DataError`` with a one-line message that names the file, the bad value and what is allowed.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DataError

MAX_FILE_BYTES = 1 << 30  # any one file or array a loader reads; MNIST's largest is 47 MB unpacked
MAX_CSV_BYTES = 256 << 20  # parsing text costs several times its size in memory
MAX_CLASSES = 10_000  # labels are 0..K-1 with K at most this
MAX_CLASS_NAME = 200  # characters; the model file's own limit
MAX_INPUTS = 1 << 24  # inputs per example: the model file's own limit
MAX_EXAMPLE_DIMS = 4  # one example is (features,) up to (height, width, channels) and one more
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: what a feature or label array may hold
KIND_NAMES = {"b": "bool", "i": "integer", "u": "unsigned", "f": "float", "c": "complex", "O": "Python objects",
              "U": "text", "S": "bytes", "V": "structured", "M": "datetime", "m": "timedelta"}


def shown(value, limit: int = 40) -> str:
    """``repr`` of a value cut to ``limit`` characters, so a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(e: BaseException) -> str:
    """An exception as one line (library messages sometimes span several)."""
    return " ".join(str(e).split()) or type(e).__name__


def regular_file(path: Path, max_bytes: int, fix: str = "check the path") -> Path:
    """``path`` resolved, once it is known to be a regular file of at most ``max_bytes``."""
    try:
        status = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        what = "file not found" if isinstance(e, FileNotFoundError) else f"cannot open ({reason(e)})"
        raise DataError(f"{path}: {what}; help: {fix}") from None
    if not stat.S_ISREG(status.st_mode):  # a folder, a pipe that would block, a device that never ends
        raise DataError(f"{path}: not a regular file; allowed: a file of at most {max_bytes} bytes")
    if status.st_size > max_bytes:
        raise DataError(f"{path}: {status.st_size} bytes; allowed: at most {max_bytes}")
    return Path(path).resolve()


def check_nbytes(shape: tuple[int, ...], itemsize: int, where: str) -> int:
    """The bytes an array of ``shape`` takes, refused above ``MAX_FILE_BYTES`` before it is read."""
    n = math.prod(shape) * itemsize
    if n > MAX_FILE_BYTES or min(shape, default=0) < 0:
        raise DataError(f"{where}: shape {shape} needs {n} bytes; allowed: at most {MAX_FILE_BYTES}")
    return n


def check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        what = "structured" if dtype.fields or dtype.subdtype else KIND_NAMES.get(dtype.kind, dtype.kind)
        raise DataError(f"{where}: dtype {dtype.str} ({what}); allowed: bool, integer or float numbers")


def check_features(x: np.ndarray, where: str, at: Callable[[tuple], str] | None = None) -> None:
    """Examples on the first axis; each one a finite numeric array of at most ``MAX_INPUTS`` values."""
    check_dtype(x.dtype, where)
    example = x.shape[1:]
    if not 1 <= len(example) <= MAX_EXAMPLE_DIMS or 0 in example:
        raise DataError(f"{where}: shape {x.shape}; allowed: (examples, features) up to "
                        f"{MAX_EXAMPLE_DIMS} feature axes, none of length 0")
    if math.prod(example) > MAX_INPUTS:
        raise DataError(f"{where}: {math.prod(example)} inputs per example; allowed: at most {MAX_INPUTS}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        place = at(index) if at else f"at index {index}"
        raise DataError(f"{where}: {place}: {x[index]} is not a finite number; "
                        "allowed: finite numbers (no NaN or inf); help: fill in or drop that example")


def check_labels(y: np.ndarray, k: int, where: str, at: Callable[[int], str] | None = None) -> np.ndarray:
    """``y`` as int64 once every label is a whole number in ``0..k-1``."""
    check_dtype(y.dtype, where)
    if y.ndim != 1:
        raise DataError(f"{where}: labels of shape {y.shape}; allowed: shape (examples,), one label each; "
                        "help: y.reshape(-1)")
    ok = np.isfinite(y) & (y >= 0) & (y < k) & (np.floor(y) == y) if y.dtype.kind == "f" else (y >= 0) & (y < k)
    if not ok.all():
        i = int(np.argmin(ok))
        place = at(i) if at else f"example {i}"
        raise DataError(f"{where}: {place}: label {shown(y[i].item())}; allowed: whole numbers 0..{k - 1}")
    return y.astype(np.int64)


def check_values(y: np.ndarray, k: int, where: str) -> None:
    """Regression targets: ``(examples, k)`` finite numbers."""
    check_dtype(y.dtype, where)
    if y.ndim != 2 or y.shape[1] != k:
        raise DataError(f"{where}: targets of shape {y.shape}; allowed: (examples, {k}), one row of {k} value(s) "
                        "per example")
    if not np.isfinite(y).all():
        i, j = (int(v) for v in np.argwhere(~np.isfinite(y))[0])
        raise DataError(f"{where}: example {i}: target {j} is {y[i, j]}; allowed: finite numbers (no NaN or inf)")


def check_class_name(name: str, where: str) -> str:
    """A class name a model file can keep: 1..``MAX_CLASS_NAME`` printable characters."""
    if not 0 < len(name) <= MAX_CLASS_NAME or not name.isprintable():
        raise DataError(f"{where}: class name {shown(name)}; allowed: 1..{MAX_CLASS_NAME} printable characters")
    return name


def classes_for(*labels: np.ndarray | None) -> tuple[str, ...]:
    """Class names ``"0".."K-1"`` for labels already checked against ``MAX_CLASSES``: K no more than needed."""
    top = max((int(y.max()) for y in labels if y is not None and y.size), default=-1)
    return tuple(str(i) for i in range(top + 1))


def check_splits(dataset, n_input: int | None = None, n_classes: int | None = None):
    """Every split of ``dataset`` is usable, or a DataError says which one is not and why.

    Checks, for train, validation and test: x and y both present (or both absent; train
    always), the same number of examples, at least one, the training width, numeric and
    finite features, labels 0..K-1 (a regression's targets: finite, one per named column).
    ``n_input`` and ``n_classes``, when given (a model's), must fit too. Returns the dataset,
    so a loader can end with ``return check_splits(ds)``.
    """
    width = dataset.x_train.shape[1:] if isinstance(dataset.x_train, np.ndarray) else ()
    present = [split for split in ("train", "val", "test") if _check_split(dataset, split, width)]
    k = len(dataset.classes)
    regression = dataset.task == "regression"
    if regression and not 1 <= k <= MAX_CLASSES:
        raise DataError(f"{dataset.name}: {k} target columns; allowed: 1..{MAX_CLASSES}")
    if not regression and not 2 <= k <= MAX_CLASSES:
        raise DataError(f"{dataset.name}: {k} classes; allowed: 2..{MAX_CLASSES} (a classifier needs two)")
    if tuple(dataset.preprocessing.shape) != width:
        raise DataError(f"{dataset.name}: examples of shape {width}, "
                        f"but its preprocessing says {tuple(dataset.preprocessing.shape)}")
    k = k if n_classes is None else min(k, n_classes)
    for split in present:
        check = check_values if regression else check_labels
        check(getattr(dataset, f"y_{split}"), k, f"{dataset.name}: y_{split}")
    if n_input is not None and dataset.n_input != n_input:
        raise DataError(f"{dataset.name}: {dataset.n_input} inputs per example, but the model takes {n_input}; "
                        "help: evaluate on the dataset the model was trained on")
    return dataset


def _check_split(dataset, split: str, width: tuple) -> bool:
    """Whether ``split`` is present, once its x and y are known to fit together and with training."""
    xs, ys = f"x_{split}", f"y_{split}"
    x, y = getattr(dataset, xs), getattr(dataset, ys)
    where = f"{dataset.name}: {xs}"
    if x is None and y is None:
        if split == "train":
            raise DataError(f"{dataset.name}: no training examples (no x_train, no y_train)")
        return False
    if x is None or y is None:
        have, lack = (xs, ys) if y is None else (ys, xs)
        raise DataError(f"{dataset.name}: {have} without {lack}; allowed: both or neither")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"{where}: not an array")
    n_x, n_y = (len(a) if a.ndim else 0 for a in (x, y))
    if n_x != n_y or not n_x:
        raise DataError(f"{where} has {n_x} examples and {ys} has {n_y}; allowed: the same number, at least one")
    if x.shape[1:] != width:
        raise DataError(f"{where}: examples of shape {x.shape[1:]}, but x_train's are {width}; allowed: {width}")
    check_features(x, where)
    return True
