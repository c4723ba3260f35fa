"""Generic tables: CSV (numbers, label in the last column) and ``.npz`` archives.

Both are read as untrusted: bounded in size before they are read, every cell a finite
number, every label a whole number 0..K-1 with K at most ``MAX_CLASSES``, and any fault
a ``DataError`` naming the file and the row, column or array at fault.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import (
    MAX_CLASSES,
    MAX_CSV_BYTES,
    MAX_FILE_BYTES,
    check_dtype,
    check_features,
    check_labels,
    check_nbytes,
    check_splits,
    classes_for,
    reason,
    regular_file,
    shown,
)
from .dataset import Dataset, Preprocessing

NPZ_KEYS = ("x_train", "y_train")
NPZ_ARRAYS = (*NPZ_KEYS, "x_test", "y_test")
NEWLINE = re.compile(r"\r\n|\r|\n")


def load_csv(path: Path) -> Dataset:
    """A CSV of numbers, one example a row, the label in the last column.

    The first row is a header when its last field (the label's) is not a number.
    """
    path = regular_file(path, MAX_CSV_BYTES)
    rows = [(n, line) for n, line in enumerate(NEWLINE.split(_text(path)), 1) if line.strip()]
    header = _header(rows)
    table = _parse(rows, header, path)

    def at(i: int, j: int) -> str:
        return f"row {rows[i][0]}, {_column(j, header)}"

    check_features(table, str(path), lambda index: at(*index))  # the labels too: NaN is no label
    y = check_labels(table[:, -1], MAX_CLASSES, str(path), lambda i: at(i, table.shape[1] - 1))
    x = table[:, :-1]
    return check_splits(Dataset(f"csv:{path}", x, y, classes_for(y), Preprocessing("table", (x.shape[1],))))


def _text(path: Path) -> str:
    with open(path, "rb") as f:
        raw = f.read(MAX_CSV_BYTES + 1)  # the file may have grown since its size was checked
    if len(raw) > MAX_CSV_BYTES:
        raise DataError(f"{path}: more than {MAX_CSV_BYTES} bytes; allowed: at most {MAX_CSV_BYTES}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
                        "help: save it as UTF-8") from None


def _column(j: int, header: list[str] | None) -> str:
    return f"column {j + 1}" + (f" ({shown(header[j].strip())})" if header else "")


def _header(rows: list[tuple[int, str]]) -> list[str] | None:
    """The first row's fields, taken off ``rows``, when it is a header: its label field is not a number."""
    if rows and not _is_number(rows[0][1].rsplit(",", 1)[-1]):
        return rows.pop(0)[1].split(",")
    return None


def _is_number(field: str) -> bool:
    """What NumPy's CSV reader takes for a number: Python's float syntax, in ASCII, without ``_``."""
    if not field.isascii() or "_" in field:
        return False
    try:
        float(field)
        return True
    except ValueError:
        return False


def _parse(rows: list[tuple[int, str]], header: list[str] | None, path: Path) -> np.ndarray:
    """The rows as a float table, or a DataError naming the first row and column that is not a number."""
    if not rows:
        raise DataError(f"{path}: no data rows; allowed: one example a row, numbers, the label last")
    width = len(header) if header else rows[0][1].count(",") + 1
    if width < 2:
        raise DataError(f"{path}: {width} column; allowed: at least one feature column and a label column")
    try:
        table = np.loadtxt([line for _, line in rows], delimiter=",", ndmin=2, comments=None, dtype=np.float64)
    except ValueError as e:
        _locate(rows, header, width, path)
        raise DataError(f"{path}: not a numeric CSV table ({reason(e)})") from None
    if table.shape[1] != width:
        _locate(rows, header, width, path)
        raise DataError(f"{path}: rows of {table.shape[1]} fields under a header of {width}")
    return table


def _locate(rows: list[tuple[int, str]], header: list[str] | None, width: int, path: Path) -> None:
    """Raise a DataError at the first row with the wrong number of fields or a field that is not a number."""
    first = "the header" if header else f"row {rows[0][0]}"
    for n, line in rows:
        fields = line.split(",")
        if len(fields) != width:
            raise DataError(f"{path}: row {n} has {len(fields)} fields; allowed: {width}, as in {first}")
        for j, field in enumerate(fields):
            if not _is_number(field):
                raise DataError(f"{path}: row {n}, {_column(j, header)}: {shown(field.strip())} is not a number; "
                                "allowed: numbers only, the label last")


def load_npz(path: Path) -> Dataset:
    """An ``.npz`` with ``x_train`` (m, features...), ``y_train`` (m,) and optionally ``x_test``, ``y_test``."""
    path = regular_file(path, MAX_FILE_BYTES)
    arrays, names = _npz_arrays(path)
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; it has {shown(names, 80)}; "
                        f"allowed: {', '.join(NPZ_ARRAYS)}")
    y, y_test = (None if k not in arrays else check_labels(arrays[k], MAX_CLASSES, f"{path}: {k}")
                 for k in ("y_train", "y_test"))
    x = arrays["x_train"]
    return check_splits(Dataset(
        f"npz:{path}", x, y, classes_for(y, y_test), Preprocessing("table", x.shape[1:]),
        x_test=arrays.get("x_test"), y_test=y_test,
    ))


# What zipfile and the .npy reader raise on a damaged archive: the zip structure, its
# compression, an encrypted member, or an .npy header that does not parse.
NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error,
              NotImplementedError, RuntimeError)


def _npz_arrays(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The known arrays of the archive, each header checked before its data is read, and all its names."""
    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename[:-4]: i for i in z.infolist() if i.filename[:-4] in NPZ_ARRAYS
                       and i.filename.endswith(".npy")}
            total = sum(i.file_size for i in members.values())
            if total > MAX_FILE_BYTES:
                raise DataError(f"{path}: its arrays unpack to {total} bytes; allowed: at most {MAX_FILE_BYTES}")
            arrays = {k: _read_npy(z, info, f"{path}: {k}") for k, info in members.items()}
            return arrays, sorted(n.removesuffix(".npy") for n in z.namelist())
    except NPZ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz archive ({reason(e)})") from None


def _read_npy(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    fmt = np.lib.format
    with z.open(info) as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{where}: .npy format version {version}; allowed: 1.0 or 2.0")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f)
    check_dtype(dtype, where)
    n = check_nbytes(shape, dtype.itemsize, where)
    if n > info.file_size:  # the zip entry bounds what can be read; a header may not claim more
        raise DataError(f"{where}: its header {shape} needs {n} bytes, the archive holds {info.file_size}")
    with z.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)
