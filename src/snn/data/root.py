"""Where datasets live: ``--data``, else ``$SNN_DATA_DIR``, else a per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from ..errors import DataError


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root; it need not exist yet (fetching creates it), but if it exists it is a folder."""
    if explicit:
        return _folder(Path(explicit).expanduser(), "the data root (--data)")
    if os.environ.get("SNN_DATA_DIR"):
        return _folder(Path(os.environ["SNN_DATA_DIR"]).expanduser(), "the data root (SNN_DATA_DIR)")
    return _folder(Path(platformdirs.user_cache_dir("snn")) / "data", "the data root (the per-user cache)")


def dataset_folder(root: Path, name: str) -> Path:
    """``root / name`` for a published dataset, refused when the root or it is something other than a folder."""
    _folder(root, "the data root")
    return _folder(root / name, f"the {name} folder")


def _folder(path: Path, what: str) -> Path:
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is not a folder; help: point it at a folder "
                        "(created when a dataset is fetched)")
    return path
