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

import codecs
import csv
import io
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

    Without a label name the first row is a header when its last field (the label's) is not a
    number, and the file is read as NumPy reads a table of numbers: a quote is no number, never
    the start of a quoted field. With a label name it is read as the csv module reads it.
    """
    path = regular_file(path, MAX_CSV_BYTES)
    if options.label is not None:
        return _labelled(path, _records(path, MAX_CSV_BYTES), options)
    records = _records(path, MAX_CSV_BYTES, csv.QUOTE_NONE)
    n, first = next(records, (0, []))
    header = first if first and not _is_number(first[-1]) else None
    if header is None:  # the first row is data
        records = itertools.chain([(n, first)] if first else [], records)
    rows, table, _ = _read_table(records, len(first), range(len(first)), header, path, NUMBERS_ONLY,
                                 first="the header" if header else f"row {n}")
    width = table.shape[1]
    if not len(rows):
        raise DataError(f"{path}: no data rows; allowed: one example a row, numbers, the label last")
    if width < 2:
        raise DataError(f"{path}: {width} column; allowed: at least one feature column and a label column")

    def at(i: int, j: int) -> str:
        return f"row {rows[i]}, {_column(j, header)}"

    check_features(table, str(path), lambda index: at(*index))  # the labels too: NaN is no label
    y = check_labels(table[:, -1], MAX_CLASSES, str(path), lambda i: at(i, table.shape[1] - 1))
    x = table[:, :-1]
    return check_splits(Dataset(f"csv:{path}", x, y, classes_for(y), Preprocessing("table", (x.shape[1],))))


CHUNK = 4096  # records turned into numbers at a time: their text and fields stay a few MiB, whatever the file's size
# A number as a table writes it: ASCII digits, sign, point, exponent, nan or inf, spaces around it. float()
# takes more (other scripts' digits, 1_000, tabs and line breaks around it), none of which a table means as one.
PLAIN = re.compile(r"[0-9A-Za-z.+\- ]*")


@dataclass(frozen=True)
class _Rules:
    """What a table's numeric cells may hold, and how a message says so."""

    allowed: str
    finite: bool = True  # refuse a missing value, NaN or inf here (a numbers-only CSV leaves NaN to check_features)
    help: str = "; help: encode that column as numbers or drop it"


NUMBERS_ONLY = _Rules("numbers only, the label last", finite=False, help="")


class _Bounded(io.RawIOBase):
    """A file's bytes, refused past ``most`` of them: the file may have grown since its size was checked."""

    def __init__(self, f, most: int, path: Path):
        self.f, self.left, self.most, self.path = f, most, most, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        self.left -= n
        if self.left < 0:
            raise DataError(f"{self.path}: more than {self.most} bytes; allowed: at most {self.most}")
        return n


def _records(path: Path, most: int, quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """The file's records, read as they are needed, as the csv module splits them: a quoted field may
    hold a comma, a quote or a line break. Each comes with its row number, counted as a spreadsheet
    numbers its rows: the first record (the header, if there is one) is row 1, a quoted line break
    starts no row, and a blank line is a row of its own, though none is yielded."""
    with open(path, "rb", buffering=0) as raw, io.TextIOWrapper(io.BufferedReader(_Bounded(raw, most, path)),
                                                               encoding="utf-8-sig", newline="") as text:
        n = 0
        try:
            for n, fields in enumerate(csv.reader(text, strict=True, quoting=quoting), 1):
                if len(fields) > 1 or fields and fields[0].strip():
                    yield n, fields
        except csv.Error as e:
            raise DataError(f"{path}: row {n + 1}: not a CSV row ({reason(e)}); "
                            "help: quote a field holding a comma or a quote, and close its quotes") from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _not_utf8(path: Path) -> DataError:
    """The error for a file that is not UTF-8, naming its first bad byte (found again, a chunk at a time)."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while True:
            chunk, pending = f.read(1 << 20), len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:  # e.object: the bytes still pending, then the chunk
                return DataError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                 f"{offset - pending + e.start}); help: save it as UTF-8")
            if not chunk:
                return DataError(f"{path}: not UTF-8 text; help: save it as UTF-8")  # it changed while read
            offset += len(chunk)


def _column(j: int, header: list[str] | None) -> str:
    return f"column {j + 1}" + (f" ({shown(header[j].strip())})" if header else "")


def _is_number(field: str) -> bool:
    """A plain number (see ``PLAIN``) in Python's float syntax."""
    if not PLAIN.fullmatch(field):
        return False
    try:
        float(field)
        return True
    except ValueError:
        return False


def _read_table(records: Iterator[tuple[int, list[str]]], width: int, numeric, header: list[str] | None,
                path: Path, rules: _Rules, label: int | None = None, first: str = "the header"):
    """The records' row numbers, the numbers in their ``numeric`` columns and the codes of their ``label``
    column's class names, with the names: ``(rows, table, (codes, names))``. Read ``CHUNK`` records at a
    time, so that the memory it takes is that of the numbers (and a few MiB), not of the text."""
    numeric, names = list(numeric), {}
    rows, table, codes = np.zeros(0, np.int64), np.zeros((0, len(numeric))), np.zeros(0, np.int64)
    for numbers, cells, labels in _chunks(records, width, numeric, label, f"{path}: row {{}} has {{}} fields; "
                                          f"allowed: {width}, as in {first}"):
        _grow(table, _floats(numbers, cells, numeric, header, path, rules))
        _grow(rows, np.array(numbers, np.int64))
        if label is not None:
            _grow(codes, _codes(numbers, labels, names, _column(label, header), path))
    return rows, table, (codes, names)


def _chunks(records: Iterator[tuple[int, list[str]]], width: int, numeric: list[int], label: int | None,
            wrong: str) -> Iterator[tuple[list[int], list[str], list[str]]]:
    """The records ``CHUNK`` at a time, each chunk as its row numbers, the cells of its ``numeric`` columns
    (row after row, in one flat list) and its ``label`` column's cells. Flat lists of strings keep no
    record's list alive, which would leave the garbage collector thousands of them to walk, again and again."""
    while True:
        numbers, cells, labels = [], [], []
        for n, fields in itertools.islice(records, CHUNK):
            if len(fields) != width:
                raise DataError(wrong.format(n, len(fields)))
            numbers.append(n)
            cells.extend(map(fields.__getitem__, numeric))
            if label is not None:
                labels.append(fields[label])
        if not numbers:
            return
        yield numbers, cells, labels


def _grow(a: np.ndarray, block: np.ndarray) -> None:
    """``block``'s rows put after ``a``'s own, in place. The buffer is grown with realloc, which moves
    a large one's pages (mremap) rather than copying them: the table never takes twice its memory, as
    a list of blocks then joined, or an array grown by copying, would."""
    n = len(a)
    a.resize((n + len(block), *a.shape[1:]), refcheck=False)  # ours alone: no other array views it
    a[n:] = block


def _floats(numbers: list[int], cells: list[str], columns: list[int], header: list[str] | None, path: Path,
            rules: _Rules) -> np.ndarray:
    """The cells (of the rows ``numbers``, in ``columns``) as a float table, or a DataError at the first one
    that is no number."""
    if PLAIN.fullmatch("".join(cells)):  # each cell plain (one check for all): float() takes no more than it should
        try:
            table = np.fromiter(map(float, cells), np.float64, len(cells)).reshape(len(numbers), len(columns))
            if not rules.finite or np.isfinite(table).all():
                return table
        except ValueError:  # a cell that is empty, or of plain characters but no number: named just below
            pass
    raise _bad_cell(numbers, cells, columns, header, path, rules)


def _bad_cell(numbers: list[int], cells: list[str], columns: list[int], header: list[str] | None, path: Path,
              rules: _Rules) -> DataError:
    """The error naming the first of the cells that ``rules`` refuse."""
    for k, cell in enumerate(cells):
        cell, c = cell.strip(" "), columns[k % len(columns)]
        where = f"{path}: row {numbers[k // len(columns)]}, {_column(c, header)}"
        if "\n" in cell or "\r" in cell:
            return DataError(f"{where}: {shown(cell)} holds a line break, which no number does; "
                             f"allowed: {rules.allowed}; help: check the quotes around that cell")
        if rules.finite and cell.strip().lower() in MISSING:
            return DataError(f"{where}: missing value ({shown(cell)}); allowed: {rules.allowed}; "
                             "help: fill it in or drop that row")
        if not _is_number(cell):
            return DataError(f"{where}: {shown(cell)} is not a number; allowed: {rules.allowed}{rules.help}")
        if rules.finite and not math.isfinite(float(cell)):
            return DataError(f"{where}: {cell} is not a finite number; allowed: {rules.allowed}")
    return DataError(f"{path}: not a numeric table; allowed: {rules.allowed}")


def _codes(numbers: list[int], labels: list[str], names: dict[str, int], column: str, path: Path) -> np.ndarray:
    """The labels (of the rows ``numbers``) as codes into ``names``, each new name checked as it is first
    seen and added in that order (sorted once all are known, by ``_classes``)."""
    codes = []
    for n, raw in zip(numbers, labels):
        label = raw.strip()
        if len(label) != len(raw) and ("\n" in raw or "\r" in raw):
            label = raw.strip(" ")  # a line break at either end is kept, and refused: a label is one line
        code = names.get(label)
        if code is None:
            code = names[label] = _new_class(label, len(names), f"{path}: row {n}, {column}", column, path)
        codes.append(code)
    return np.array(codes, np.int64)


def _new_class(label: str, known: int, where: str, column: str, path: Path) -> int:
    """The code of a label not seen before (the ``known``-th), once it is known to be a class name."""
    if label.lower() in MISSING:
        raise DataError(f"{where}: missing label ({shown(label)}); "
                        "allowed: a class name or number in every row; help: fill it in or drop that row")
    if known == MAX_CLASSES:
        raise DataError(f"{path}: {column} holds more than {MAX_CLASSES} different labels; allowed: at most "
                        f"{MAX_CLASSES} classes; help: for a numeric target add &task=regression")
    check_class_name(label, where)  # printable text: a line break or a control character is no class name
    return known


def _classes(codes: np.ndarray, names: dict[str, int]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The labels' codes as indices into the sorted class names (by value when all are numbers)."""
    numbers = all(_is_number(name) for name in names)
    order = sorted(names, key=(lambda name: (float(name), name)) if numbers else None)
    rank = np.empty(len(order), np.int64)
    rank[[names[name] for name in order]] = np.arange(len(order))
    return rank[codes], tuple(order)


def _labelled(path: Path, records: Iterator[tuple[int, list[str]]], options: CsvOptions) -> Dataset:
    """A CSV with a header, the label in the column ``options.label`` names, numbers in every other column."""
    _, header = next(records, (0, None))
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
    allowed = "numbers in every column" + ("" if regression else f" but the label ({shown(label)})")
    rows, table, (codes, names) = _read_table(records, width, numeric, header, path, _Rules(allowed),
                                              None if regression else j)
    if width < 2 or not len(rows):
        raise DataError(f"{path}: {width} column(s), {len(rows)} data row(s); "
                        "allowed: at least one feature column and a label column, and one example a row")
    if regression:
        x, y = table[:, :-1], table[:, -1:]
        classes = (check_class_name(label, f"{path}: the target's column"),)
    else:
        x, (y, classes) = table, _classes(codes, names)
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


def load_rows(path: Path, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """A CSV's examples to predict, with their row numbers: ``(rows, x)``, ``x`` of shape ``(m, n_x)``.

    A model that knows its features' names (it was trained on a CSV with a header) takes a CSV
    whose first row, its header, names each of them once, in any order; other columns, such as
    the label's, are left out. Any other model takes exactly its ``n_x`` columns of numbers, in
    the order it was trained on, under a header of names only (a first row holding a number is
    data, so a typo in it is an error, not a header). Rows are numbered as ``_records`` says.
    """
    path = regular_file(path, MAX_PREDICT_BYTES)
    records = _records(path, MAX_PREDICT_BYTES)
    first = next(records, None)
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
        columns, data = [where[name][0] for name in pre.features], records
    else:
        n_x = math.prod(pre.shape)
        if width != n_x:
            raise DataError(f"{path}: {width} columns; allowed: the model's {n_x} features, numbers, in the order "
                            "it was trained on")
        header = None if any(_is_number(f) for f in first[1]) else [name.strip() for name in first[1]]
        columns, data = list(range(n_x)), records if header is not None else itertools.chain([first], records)
    rows, x, _ = _read_table(data, width, columns, header, path, _Rules("numbers in the model's feature columns"),
                             first=f"row {first[0]}")
    if not len(rows):
        raise DataError(f"{path}: no data rows under its header; allowed: one example a row")
    return rows, x


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
