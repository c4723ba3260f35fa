"""Where datasets live: ``--data``, else ``$SNN_DATA_DIR``, else a per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SNN_DATA_DIR"):
        return Path(os.environ["SNN_DATA_DIR"]).expanduser()
    return Path(platformdirs.user_cache_dir("snn")) / "data"
