"""Generic tables: CSV and ``.npz`` archives.

A CSV is either numbers with the label in the last column (``csv:PATH``), or has a header
and names its label's column (``csv:PATH?label=species``): the labels are then class names
(text or numbers), or with ``&task=regression`` real-valued targets; every other column is a
feature, a number.

Both are read as untrusted: bounded in size before they are read, every feature a finite
number, every label a whole number 0..K-1 (or a class name) with K at most ``MAX_CLASSES``,
and any fault a ``DataError`` naming the file and the row, column or array at fault.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode

import numpy as np

from ..errors import DataError
from .checks import (
    MAX_CLASS_NAME,
    MAX_CLASSES,
    MAX_CSV_BYTES,
    MAX_FILE_BYTES,
    check_class_name,
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


TASKS, OPTIONS = ("classification", "regression"), ("label", "task")
# What a table leaves in a cell it has no value for (compared in lower case, without spaces).
MISSING = ("", "na", "n/a", "nan", "null", "?")


@dataclass(frozen=True)
class CsvOptions:
    """What follows the path in ``csv:PATH?label=NAME&task=regression``."""

    label: str | None = None  # the label's column, by its header name; None: the last column, numbers 0..K-1
    task: Literal["classification", "regression"] = "classification"

    def query(self) -> str:
        """The options as the dataset's name writes them (``?label=petal%20width``), or nothing."""
        pairs = {"label": self.label, "task": self.task if self.task != "classification" else None}
        query = urlencode({k: v for k, v in pairs.items() if v is not None})
        return "?" + query if query else ""


def csv_options(spec: str) -> tuple[str, CsvOptions]:
    """``PATH?label=NAME&task=regression`` as the path and its options.

    Only what follows the last ``?`` can be options, and only if it holds a ``=``: any other
    ``?`` belongs to the path, which is then resolved like any file's path.
    """
    path, mark, query = spec.rpartition("?")
    if not mark or "=" not in query:
        return spec, CsvOptions()
    where = shown(f"csv:{spec}", 100)
    allowed = "?label=NAME (the label's column in the header), and &task=regression for a numeric target"
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, max_num_fields=len(OPTIONS))
    except ValueError as e:  # not key=value pairs, or more of them than there are options
        raise DataError(f"{where}: options {shown(query)} ({reason(e)}); allowed: {allowed}") from None
    options = dict(pairs)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown or len(options) != len(pairs):
        what = f"unknown option {shown(unknown[0])}" if unknown else "an option given twice"
        raise DataError(f"{where}: {what}; allowed: {allowed}")
    label, task = (options.get("label") or "").strip(), options.get("task", TASKS[0])
    if not label or task not in TASKS:
        problem = f"task {shown(task)}; allowed: {' or '.join(TASKS)}" if label else "no label name"
        raise DataError(f"{where}: {problem}" + ("" if label else f"; allowed: {allowed}"))
    return path, CsvOptions(label, task)


def load_csv(path: Path, options: CsvOptions = CsvOptions()) -> Dataset:
    """A CSV, one example a row: numbers with the label in the last column, or, with
    ``options.label``, a header and the label in the column it names.

    Without a label name the first row is a header when its last field (the label's) is not a number.
    """
    path = regular_file(path, MAX_CSV_BYTES)
    rows = [(n, line) for n, line in enumerate(NEWLINE.split(_text(path)), 1) if line.strip()]
    if options.label is not None:
        return _labelled(path, rows, options)
    header = _header(rows)
    table = _parse(rows, header, path)

    def at(i: int, j: int) -> str:
        return f"row {rows[i][0]}, {_column(j, header)}"

    check_features(table, str(path), lambda index: at(*index))  # the labels too: NaN is no label
    y = check_labels(table[:, -1], MAX_CLASSES, str(path), lambda i: at(i, table.shape[1] - 1))
    x = table[:, :-1]
    return check_splits(Dataset(f"csv:{path}", x, y, classes_for(y), Preprocessing("table", (x.shape[1],))))


def _text(path: Path, most: int = MAX_CSV_BYTES) -> str:
    with open(path, "rb") as f:
        raw = f.read(most + 1)  # the file may have grown since its size was checked
    if len(raw) > most:
        raise DataError(f"{path}: more than {most} bytes; allowed: at most {most}")
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


def _labelled(path: Path, lines: list[tuple[int, str]], options: CsvOptions) -> Dataset:
    """A CSV with a header, the label in the column ``options.label`` names, numbers in every other column."""
    rows = _rows(lines, path)
    _, header = next(rows, (0, None))
    if header is None:
        raise DataError(f"{path}: no header; allowed: a header naming the columns, then one example a row")
    header, label = [name.strip() for name in header], options.label
    if header.count(label) != 1:
        what = f"no column {shown(label)}" if label not in header else f"{header.count(label)} columns {shown(label)}"
        raise DataError(f"{path}: {what} in the header ({shown(', '.join(header), 80)}); "
                        "help: csv:PATH?label=NAME names the label's column, once")
    j, regression, width = header.index(label), options.task == "regression", len(header)
    # The target last, as in the numbers-only CSV: a regression's is one more column of numbers.
    numeric = [c for c in range(width) if c != j] + ([j] if regression else [])
    # One pass keeps each row's numbers as a line of text and its label, not its list of fields:
    # a large file then takes about as much memory as the numbers-only CSV.
    texts, labels, numbers = [], [], []
    for n, fields in rows:
        if len(fields) != width:
            raise DataError(f"{path}: row {n} has {len(fields)} fields; allowed: {width}, as in the header")
        texts.append(",".join(fields[c] for c in numeric))
        labels.append(fields[j].strip())
        numbers.append(n)
    if width < 2 or not texts:
        raise DataError(f"{path}: {width} column(s), {len(texts)} data row(s); "
                        "allowed: at least one feature column and a label column, and one example a row")
    allowed = "numbers in every column" + ("" if regression else f" but the label ({shown(label)})")
    table = _numbers(texts, lines, numeric, header, path, allowed)
    if regression:
        x, y = table[:, :-1], table[:, -1:]
        classes = (check_class_name(label, f"{path}: the target's column"),)
    else:
        x, (y, classes) = table, _classes(labels, numbers, _column(j, header), path)
    features = _feature_header(header, j, path)
    return check_splits(Dataset(f"csv:{path}{options.query()}", x, y, classes,
                                Preprocessing("table", (x.shape[1],), features=features), task=options.task))


def feature_names(names) -> tuple[str, ...] | None:
    """Column names (an estimator's ``feature_names_in_``) as a model keeps them, stripped as a CSV's
    header is read, or None when they cannot pick the columns out again: a name given twice, or
    one that is empty, unprintable or longer than a class name may be."""
    names = tuple(str(name).strip() for name in names)
    usable = all(0 < len(name) <= MAX_CLASS_NAME and name.isprintable() for name in names)
    return names if usable and len(set(names)) == len(names) else None


def _feature_header(header: list[str], label: int, path: Path) -> tuple[str, ...]:
    """The features' names of a header (without the label's), each a name a model can keep and find again."""
    seen: dict[str, int] = {}
    for c, name in enumerate(header):
        if c == label:
            continue
        where = f"{path}: the header's {_column(c, header) if name else f'column {c + 1}'}"
        if not name:
            raise DataError(f"{where} has no name; allowed: a name for every column; help: name it, or drop the "
                            "column (pandas writes an unnamed index first: to_csv(index=False) leaves it out)")
        if len(name) > MAX_CLASS_NAME or not name.isprintable():
            raise DataError(f"{where}: a name of {len(name)} characters; allowed: 1..{MAX_CLASS_NAME} printable ones")
        if name in seen:
            raise DataError(f"{where} has the name of column {seen[name] + 1}; allowed: distinct names, by which "
                            "snn predict and the service find each feature")
        seen[name] = c
    return tuple(name for c, name in enumerate(header) if c != label)


MAX_PREDICT_BYTES = 64 << 20  # rows to predict: their text, numbers and answers stay well inside a laptop's memory


def load_rows(path: Path, pre: Preprocessing) -> tuple[list[int], np.ndarray]:
    """A CSV's examples to predict, with their row numbers: ``(rows, x)``, ``x`` of shape ``(m, n_x)``.

    A model that knows its features' names (it was trained on a CSV with a header) takes a CSV
    whose first row, its header, names each of them once, in any order; other columns, such as
    the label's, are left out. Any other model takes exactly its ``n_x`` columns of numbers, in
    the order it was trained on, under a header of names only (a first row holding a number is
    data, so a typo in it is an error, not a header).
    """
    path = regular_file(path, MAX_PREDICT_BYTES)
    lines = [(n, line) for n, line in enumerate(NEWLINE.split(_text(path, MAX_PREDICT_BYTES)), 1) if line.strip()]
    rows = _rows(lines, path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: no rows; allowed: a header, then one example a row")
    width = len(first[1])
    if pre.features is not None:
        header = [name.strip() for name in first[1]]
        where: dict[str, list[int]] = {}
        for c, name in enumerate(header):
            where.setdefault(name, []).append(c)
        wrong = next((name for name in pre.features if len(where.get(name, ())) != 1), None)
        if wrong is not None:
            what = "no column" if wrong not in where else "more than one column"
            raise DataError(f"{path}: {what} {shown(wrong)} in the header (its first row); allowed: a header "
                            f"naming each of the model's features once ({shown(', '.join(pre.features), 80)})")
        columns, data = [where[name][0] for name in pre.features], rows
    else:
        n_x = math.prod(pre.shape)
        if width != n_x:
            raise DataError(f"{path}: {width} columns; allowed: the model's {n_x} features, numbers, in the order "
                            "it was trained on")
        header = None if any(_is_number(f) for f in first[1]) else [name.strip() for name in first[1]]
        columns, data = list(range(n_x)), rows if header is not None else itertools.chain([first], rows)
    texts, numbers = [], []
    for n, fields in data:
        if len(fields) != width:
            raise DataError(f"{path}: row {n} has {len(fields)} fields; allowed: {width}, as in row {first[0]}")
        texts.append(",".join(fields[c] for c in columns))
        numbers.append(n)
    if not texts:
        raise DataError(f"{path}: no data rows under its header; allowed: one example a row")
    return numbers, _numbers(texts, lines, columns, header, path, "numbers in the model's feature columns")


def _rows(lines: list[tuple[int, str]], path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each line's fields, as the csv module splits them (quotes allowed), with its row number."""
    reader = csv.reader((line for _, line in lines), strict=True)
    try:
        yield from ((n, fields) for (n, _), fields in zip(lines, reader))
    except csv.Error as e:
        raise DataError(f"{path}: row {lines[reader.line_num - 1][0]}: not a CSV row ({reason(e)}); "
                        "help: quote a field holding a comma or a quote, and close its quotes") from None


def _numbers(texts: list[str], lines, columns: list[int], header: list[str] | None, path: Path,
             allowed: str) -> np.ndarray:
    """The rows' numbers (``texts``: their ``columns``) as a float table, or a DataError at the first cell of
    ``lines`` (after the header, if there is one) that is no finite number."""
    try:
        table = np.loadtxt(texts, delimiter=",", ndmin=2, comments=None, dtype=np.float64)
        if table.shape == (len(texts), len(columns)) and np.isfinite(table).all():
            return table
    except ValueError:
        pass
    # The slow way, once, to name the cell.
    for n, fields in itertools.islice(_rows(lines, path), 0 if header is None else 1, None):
        for c in columns:
            cell, where = fields[c].strip(), f"{path}: row {n}, {_column(c, header)}"
            if cell.lower() in MISSING:
                raise DataError(f"{where}: missing value ({shown(cell)}); allowed: {allowed}; "
                                "help: fill it in or drop that row")
            if not _is_number(cell):
                raise DataError(f"{where}: {shown(cell)} is not a number; allowed: {allowed}; "
                                "help: encode that column as numbers or drop it")
            if not np.isfinite(float(cell)):
                raise DataError(f"{where}: {cell} is not a finite number; allowed: {allowed}")
    raise DataError(f"{path}: not a numeric table; allowed: {allowed}")


def _classes(labels: list[str], rows: list[int], column: str, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The labels (of rows ``rows``) as indices into the sorted class names (by value when all are numbers)."""
    for n, label in zip(rows, labels):
        if label.lower() in MISSING:
            raise DataError(f"{path}: row {n}, {column}: missing label ({shown(label)}); "
                            "allowed: a class name or number in every row; help: fill it in or drop that row")
    names = set(labels)
    if len(names) > MAX_CLASSES:
        raise DataError(f"{path}: {column} holds {len(names)} different labels; allowed: at most "
                        f"{MAX_CLASSES} classes; help: for a numeric target add &task=regression")
    numbers = all(_is_number(name) for name in names)
    names = sorted(names, key=(lambda name: (float(name), name)) if numbers else None)
    index = {check_class_name(name, f"{path}: {column}"): i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], dtype=np.int64), tuple(names)


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
