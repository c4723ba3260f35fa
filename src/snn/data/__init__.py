"""Datasets: the data root, the published datasets, generic tables and toy problems.

A dataset is named by a string: a published name (``catvnoncat``, ``mnist``,
``fashion-mnist``), a generated one (``spiral``, ``xor``), or a file
(``csv:PATH``, ``npz:PATH``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import toy
from .catalog import PUBLISHED
from .dataset import Dataset, Preprocessing
from .fetch import ensure
from .root import data_root
from .tabular import load_csv, load_npz

GENERATED = {"spiral": toy.spiral, "xor": toy.xor}
FILE_KINDS = {"csv": load_csv, "npz": load_npz}


def dataset_names() -> list[str]:
    return [*PUBLISHED, *GENERATED, *(f"{k}:PATH" for k in FILE_KINDS)]


def load_dataset(name: str, root: str | Path | None = None, fetch_missing: bool = False) -> Dataset:
    """Load a dataset by name (see the module docstring)."""
    kind, _, path = name.partition(":")
    if path and kind in FILE_KINDS:
        return FILE_KINDS[kind](Path(path).expanduser())
    if name in GENERATED:
        return GENERATED[name]()
    if name in PUBLISHED:
        folder = data_root(root)
        if fetch_missing:
            ensure(folder, name)
        return PUBLISHED[name].load(folder / name)
    raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")


__all__ = ["Dataset", "Preprocessing", "data_root", "dataset_names", "load_dataset"]
