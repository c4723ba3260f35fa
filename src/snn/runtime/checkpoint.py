"""The run state on disk: parameters, optimizer state, the epoch reached and the history.

Written every N epochs and on a clean stop, so ``snn train --resume RUN_DIR`` goes on
from the last one, even after the coordinator was killed. The tensors go to a new
file, then ``checkpoint.json`` (written atomically) points at it: a crash at any
moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import SnnError
from ..files import atomic_path, write_json

POINTER = "checkpoint.json"


def save_checkpoint(run_dir: Path, flat: np.ndarray, state: dict, epoch: int, history: list[dict]) -> None:
    name = f"checkpoint-{epoch}.safetensors"
    tensors = {"params": np.ascontiguousarray(flat), **{f"state.{k}": np.ascontiguousarray(v) for k, v in state.items()}}
    with atomic_path(run_dir / name) as tmp:
        save_file(tensors, str(tmp))
    previous = _pointer(run_dir)
    write_json(run_dir / POINTER, {"epoch": epoch, "tensors": name, "history": history})
    if previous and previous.get("tensors") != name:
        (run_dir / previous["tensors"]).unlink(missing_ok=True)


def load_checkpoint(run_dir: Path) -> tuple[np.ndarray, dict, int, list[dict]]:
    meta = _pointer(run_dir)
    if meta is None:
        raise SnnError(f"{run_dir}: no {POINTER}; help: only runs with checkpoints (checkpoint_every > 0, "
                       "or stopped with `snn stop`) can be resumed")
    tensors = load_file(str(run_dir / meta["tensors"]))
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    return tensors["params"], state, int(meta["epoch"]), meta["history"]


def _pointer(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / POINTER).read_text())
    except FileNotFoundError:
        return None
