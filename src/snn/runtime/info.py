"""``runtime.json``: which store and run id a run's functions use, for ``snn stop`` to reach them.

Read back from a run folder, so it is input like any other file: schema-checked and bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..documents import read_bounded
from ..errors import RunFolderError
from ..files import write_json

NAME, MAX_BYTES = "runtime.json", 64 << 10


class RuntimeInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    store: str = Field(max_length=2048, pattern=r"^(memory|redis|rediss|unix|valkey)://")
    engine: Literal["local", "ray", "lithops"]


def write_runtime_info(folder: Path, info: RuntimeInfo) -> None:
    write_json(folder / NAME, info.model_dump())


def read_runtime_info(folder: Path) -> RuntimeInfo | None:
    """The run's runtime record, or None for a run that never used the runtime."""
    path = folder / NAME
    if not path.exists():
        return None
    raw = read_bounded(path, "runtime record", RunFolderError, MAX_BYTES)
    try:
        return RuntimeInfo.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(top level)"
        raise RunFolderError(f"{path}: {where}: {first['msg']}; it is not one snn wrote") from None
