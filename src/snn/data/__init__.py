"""Datasets: the data root, the published datasets, generic tables and toy problems.

A dataset is named by a string: a published name (``catvnoncat``, ``mnist``,
``fashion-mnist``, ``cifar-10``), one that needs no download (``spiral``, ``xor``, made in
code; ``iris``, scikit-learn's copy), or a file (``csv:PATH``, ``csv:PATH?label=NAME``,
``npz:PATH``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import toy
from .catalog import PUBLISHED
from .checks import MAX_CLASSES, check_splits, reason, shown
from .dataset import Dataset, Preprocessing
from .fetch import ensure
from .root import data_root, dataset_folder
from .tabular import csv_options, load_csv, load_npz

BUILT_IN = {"spiral": toy.spiral, "xor": toy.xor, "iris": toy.iris}
FILE_KINDS = {"csv": load_csv, "npz": load_npz}


def dataset_names() -> list[str]:
    return [*PUBLISHED, *BUILT_IN, *(f"{k}:PATH" for k in FILE_KINDS)]


def load_dataset(name: str, root: str | Path | None = None, fetch_missing: bool = False) -> Dataset:
    """Load a dataset by name (see the module docstring).

    The dataset's ``name`` is this ``name`` made reloadable: a file's path becomes absolute
    (``csv:data/t.csv`` -> ``csv:/home/me/data/t.csv``), so a model trained on it can find it again.
    Every split of what is returned has passed ``check_splits``.
    """
    kind, _, path = name.partition(":")
    if path and kind == "csv":
        path, options = csv_options(path)
        return load_csv(_user_path(path), options)
    if path and kind in FILE_KINDS:
        return FILE_KINDS[kind](_user_path(path))
    if name in BUILT_IN:
        return BUILT_IN[name]()
    if name in PUBLISHED:
        folder = data_root(root)
        dataset_folder(folder, name)
        if fetch_missing:
            ensure(folder, name)
        return PUBLISHED[name].load(folder / name)
    raise DataError(f"unknown dataset {shown(name)}; allowed: {', '.join(dataset_names())}")


def _user_path(path: str) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError as e:  # ~someone who does not exist
        raise DataError(f"{shown(path)}: {reason(e)}; help: give the file's full path") from None


__all__ = ["MAX_CLASSES", "Dataset", "Preprocessing", "check_splits", "data_root", "dataset_names", "load_dataset"]
