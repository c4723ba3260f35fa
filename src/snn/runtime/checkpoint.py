"""The run state on disk: parameters, optimizer state, the epoch reached, the history and counters.

Written every N epochs, on a stop, on Ctrl-C and when the runtime fails, so
``snn train --resume RUN_DIR`` goes on from the last one, even after the coordinator
was killed. The tensors go to a new file, then ``checkpoint.json`` (written
atomically) points at it: a crash at any moment leaves the previous checkpoint whole.

A run folder is input like any other: ``checkpoint.json`` is schema-checked, and the
only file it may name is ``checkpoint-<its epoch>.safetensors`` in the same folder,
so a crafted pointer can neither read nor delete anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import CheckpointError
from ..files import atomic_path, write_json

POINTER = "checkpoint.json"
MAX_POINTER_BYTES = 64 << 20  # the history of a very long run, at most


def tensors_name(epoch: int) -> str:
    return f"checkpoint-{epoch}.safetensors"


class HistoryRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    epoch: int = Field(gt=0)
    cost: float
    train_accuracy: float = Field(ge=0, le=1)
    val_accuracy: float | None = Field(None, ge=0, le=1)
    seconds: float = Field(ge=0)
    val_cost: float | None = None
    learning_rate: float


class Pointer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    epoch: int = Field(ge=0)
    tensors: str
    history: list[HistoryRecord]
    counters: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_its_own_file(self):
        if self.tensors != tensors_name(self.epoch):
            raise ValueError(f"tensors must be {tensors_name(self.epoch)!r}, the file of epoch {self.epoch} "
                             "in the run folder")
        if [r.epoch for r in self.history] != list(range(self.epoch - len(self.history) + 1, self.epoch + 1)):
            raise ValueError(f"history must count the epochs up to {self.epoch}")
        if any(v < 0 for v in self.counters.values()):
            raise ValueError("counters cannot be negative")
        return self


@dataclass
class Checkpoint:
    flat: np.ndarray
    state: dict[str, np.ndarray]
    epoch: int
    history: list[dict]
    counters: dict[str, int] = field(default_factory=dict)


def save_checkpoint(run_dir: Path, flat: np.ndarray, state: dict, epoch: int, history: list[dict],
                    counters: dict[str, int] | None = None) -> None:
    name = tensors_name(epoch)
    tensors = {"params": np.ascontiguousarray(flat), **{f"state.{k}": np.ascontiguousarray(v) for k, v in state.items()}}
    with atomic_path(run_dir / name) as tmp:
        save_file(tensors, str(tmp))
    try:
        previous = _pointer(run_dir)
    except CheckpointError:
        previous = None  # a tampered pointer names nothing we may delete
    write_json(run_dir / POINTER, {"epoch": epoch, "tensors": name, "history": history,
                                   "counters": dict(counters or {})})
    if previous is not None and previous.tensors != name:
        (run_dir / previous.tensors).unlink(missing_ok=True)  # checked: checkpoint-N.safetensors, here


def load_checkpoint(run_dir: Path, flat: np.ndarray, state: dict[str, np.ndarray]) -> Checkpoint:
    """The checkpoint of ``run_dir``, checked against the run's parameters ``flat`` and optimizer ``state``."""
    meta = _pointer(run_dir)
    if meta is None:
        raise CheckpointError(f"{run_dir}: no {POINTER}; help: only runs with checkpoints (checkpoint_every > 0, "
                              "or ended by `snn stop`, Ctrl-C or a runtime failure) can be resumed")
    path = run_dir / meta.tensors
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; the checkpoint cannot be read") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None
    expected = {"params": flat, **{f"state.{k}": v for k, v in state.items()}}
    if set(tensors) != set(expected):
        raise CheckpointError(f"{path}: holds tensors {sorted(tensors)}; this run's checkpoint holds {sorted(expected)}")
    for name, like in expected.items():
        got = tensors[name]
        if got.shape != like.shape or got.dtype != like.dtype:
            raise CheckpointError(f"{path}: tensor {name} is {got.dtype}{list(got.shape)}; this run needs "
                                  f"{like.dtype}{list(like.shape)}")
        if not np.isfinite(got).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values")
    state_out = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    return Checkpoint(tensors["params"], state_out, meta.epoch, [r.model_dump() for r in meta.history],
                      dict(meta.counters))


def _pointer(run_dir: Path) -> Pointer | None:
    path = run_dir / POINTER
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    if len(raw) > MAX_POINTER_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_POINTER_BYTES} bytes; it is not one snn wrote")
    try:
        return Pointer.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(top level)"
        raise CheckpointError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}; "
                              "help: it was changed after snn wrote it; remove it to start over with --force") from None

