"""The run state on disk: parameters, optimizer state, the epoch reached, the history and counters.

Written by time (``CheckpointClock``: by default at most 30 s of training apart, and at
the end), every N epochs if asked, on a stop, on Ctrl-C and when the runtime fails, so
``snn train --resume RUN_DIR`` goes on from the last one, even after the coordinator
was killed. The tensors go to a new file, then ``checkpoint.json`` (written
atomically) points at it: a crash at any moment leaves the previous checkpoint whole.

A run folder is input like any other: ``checkpoint.json`` is schema-checked, and the
only file it may name is ``checkpoint-<its epoch>.safetensors`` in the same folder,
so a crafted pointer can neither read nor delete anything else.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import (BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..core.training import MAX_EPOCHS
from ..errors import CheckpointError
from ..files import write_json
from ..documents import read_bounded, schema_problem
from ..tensorfile import TENSOR_HEADER_BYTES, check_tensors, read_tensors, write_tensors

POINTER = "checkpoint.json"
MAX_POINTER_BYTES = 64 << 20  # the history of a very long run, at most
MAX_COUNTERS = 64
PARAMS, STATE_PREFIX = "params", "state."
_TENSORS = re.compile(r"^checkpoint-(0|[1-9][0-9]*)\.safetensors$")


BUDGET = 0.01  # checkpoints take at most this share of the training time (the bar is 2%)...
MIN_GAP = 1.0  # ...and come at most once a second, however cheap


class CheckpointClock:
    """When the next checkpoint is due: crash-safe by default, at a bounded cost.

    By time, checkpoints come as often as their cost allows: ``took / BUDGET`` seconds
    apart (never under ``MIN_GAP``), and never more than ``seconds`` apart. So a
    ``kill -9`` loses at most ``seconds`` of training, and a cheap checkpoint is taken
    about every second. Only a checkpoint slower than ``BUDGET * seconds`` (0.6 s at the
    default 30 s) makes the bound on lost work cost more than ``BUDGET``. ``every`` adds
    checkpoints every N epochs; ``seconds=0`` leaves only those (and the ones on a stop).
    """

    def __init__(self, seconds: float, every: int = 0, clock=time.perf_counter):
        self.seconds, self.every, self.clock = seconds, every, clock
        self.last = clock()
        self.took = 0.0
        self.spent = 0.0  # seconds spent writing checkpoints, for the benchmark
        self.epoch: int | None = None  # the epoch of the last one written

    @property
    def gap(self) -> float:
        return min(self.seconds, max(MIN_GAP, self.took / BUDGET))

    def due(self, epoch: int) -> bool:
        by_epochs = bool(self.every) and epoch % self.every == 0
        return by_epochs or (self.seconds > 0 and self.clock() - self.last >= self.gap)

    def write(self, save, epoch: int) -> None:
        """Run ``save()`` (which writes the checkpoint of ``epoch``) and note what it took."""
        started = self.clock()
        save()
        self.epoch = epoch
        self.last = self.clock()
        self.took = self.last - started
        self.spent += self.took


def tensors_name(epoch: int) -> str:
    return f"checkpoint-{epoch}.safetensors"


class HistoryRecord(BaseModel):
    """One line of ``history.csv``: what an epoch reached."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    epoch: int = Field(gt=0, le=MAX_EPOCHS)
    cost: float
    train_accuracy: float | None = Field(None, ge=0, le=1)  # None: a regression, which has no accuracy
    val_accuracy: float | None = Field(None, ge=0, le=1)
    seconds: float = Field(ge=0)
    val_cost: float | None = None
    learning_rate: float


CounterName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]


class Pointer(BaseModel):
    """``checkpoint.json``: the epoch reached, the one file of its tensors, the history and the ledger's counters."""

    model_config = ConfigDict(extra="forbid", strict=True)

    epoch: int = Field(ge=0, le=MAX_EPOCHS)
    tensors: str
    history: list[HistoryRecord]
    counters: dict[CounterName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=MAX_COUNTERS)
    # How many rows of invocations.csv belong to this epoch: the ledger is written first, so it holds
    # at least these, and a resume cuts what a later epoch of the killed process added.
    ledger_rows: int | None = Field(None, ge=0)

    @field_validator("tensors")
    @classmethod
    def _names_its_own_file(cls, value: str, info: ValidationInfo) -> str:
        epoch = info.data.get("epoch")
        if epoch is None and not _TENSORS.match(value):
            raise ValueError("must be checkpoint-EPOCH.safetensors, a file in the run folder")
        if epoch is not None and value != tensors_name(epoch):
            raise ValueError(f"must be {tensors_name(epoch)!r}, the file of epoch {epoch} in the run folder")
        return value

    @model_validator(mode="after")
    def _counts_its_epochs(self):
        if [r.epoch for r in self.history] != list(range(self.epoch - len(self.history) + 1, self.epoch + 1)):
            raise ValueError(f"history must count the epochs up to {self.epoch}")
        return self


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the run's state at the end of ``epoch``."""

    flat: np.ndarray  # the parameters, as Params lays them out
    state: dict[str, np.ndarray]  # the optimizer's state
    epoch: int
    history: list[dict]  # one HistoryRecord as a dict per epoch, up to ``epoch``
    counters: dict[str, int] = field(default_factory=dict)  # the ledger's counts: retries, lost_and_retried, failed
    ledger_rows: int | None = None  # the rows of invocations.csv up to ``epoch`` (None: a checkpoint before they were)


def save_checkpoint(run_dir: Path, flat: np.ndarray, state: dict, epoch: int, history: list[dict],
                    counters: dict[str, int] | None = None, ledger_rows: int | None = None) -> None:
    """Write the tensors of ``epoch``, point ``checkpoint.json`` at them, then drop older tensor files.

    ``ledger_rows``: how many rows of ``invocations.csv``, already written, belong to the epochs up to ``epoch``.
    """
    name = tensors_name(epoch)
    write_tensors(run_dir / name, {PARAMS: flat, **{STATE_PREFIX + k: v for k, v in state.items()}})
    write_json(run_dir / POINTER, {"epoch": epoch, "tensors": name, "history": history,
                                   "counters": dict(counters or {}), "ledger_rows": ledger_rows})
    # By pattern, never by what a pointer says: only checkpoint-N.safetensors of this folder go.
    for path in run_dir.iterdir():
        if path.name != name and _TENSORS.match(path.name) and not path.is_dir():
            path.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, flat: np.ndarray, state: dict[str, np.ndarray]) -> Checkpoint:
    """The checkpoint of ``run_dir``, checked against the run's own parameters and optimizer state.

    ``flat`` and ``state`` are the fresh buffers of the run that resumes: the checkpoint
    must hold a ``params`` tensor of ``flat``'s shape and dtype and exactly the same
    optimizer state arrays, all finite. Anything else is a ``CheckpointError``.
    """
    meta = _pointer(run_dir)
    if meta is None:
        raise CheckpointError(f"{run_dir}: no {POINTER}; help: only runs with checkpoints (checkpoint_seconds > 0, "
                              "the default, checkpoint_every > 0, or ended by `snn stop`, Ctrl-C or a runtime failure) "
                              "can be resumed")
    path = run_dir / meta.tensors
    expected = {PARAMS: flat, **{STATE_PREFIX + k: v for k, v in state.items()}}
    need = sum(v.nbytes for v in expected.values())
    tensors = read_tensors(path, CheckpointError, min_bytes=need, max_bytes=need + TENSOR_HEADER_BYTES)
    check_tensors(path, tensors, {k: (v.shape, v.dtype) for k, v in expected.items()}, CheckpointError)
    state_out = {k[len(STATE_PREFIX):]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
    return Checkpoint(tensors[PARAMS], state_out, meta.epoch, [r.model_dump() for r in meta.history],
                      dict(meta.counters), meta.ledger_rows)


def checkpoint_epoch(run_dir: Path) -> int | None:
    """The epoch of ``run_dir``'s checkpoint, or None when it has none (or none that snn wrote)."""
    try:
        meta = _pointer(run_dir)
    except CheckpointError:
        return None
    return None if meta is None else meta.epoch


def _pointer(run_dir: Path) -> Pointer | None:
    path = run_dir / POINTER
    if not path.exists():
        return None
    raw = read_bounded(path, "checkpoint pointer", CheckpointError, MAX_POINTER_BYTES)
    try:
        return Pointer.model_validate_json(raw)
    except ValidationError as e:
        raise CheckpointError(f"{path}: {schema_problem(e)}; help: it was changed after snn wrote it; "
                              "remove it to start over with --force") from None
