"""The events a coordinator sends to functions: one dataclass per kind of unit.

On the wire (through any engine) an event is plain JSON, made by ``to_json`` and read
back by ``event_from_json``; arrays never travel in it, only the store keys that
hold them. The network and the optimizer serialise themselves.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from ..core.network import NetworkSpec
from ..core.optimizers import optimizer_from_json, optimizer_to_json


@dataclass(frozen=True)
class Train:
    """What every unit of one training step shares."""

    lr: float
    l2: float
    keep: float  # 1 - dropout
    m: int  # examples in the batch
    mask_key: tuple[int, int, int, int]  # (seed, epoch, batch, m): names the batch's dropout masks
    optimizer: Any  # an optimizer of core.optimizers
    state: tuple[str, ...]  # names of the optimizer's state arrays

    def to_json(self) -> dict:
        return self._json  # every unit of a step carries the same one

    @functools.cached_property
    def _json(self) -> dict:
        return {"lr": self.lr, "l2": self.l2, "keep": self.keep, "m": self.m, "mask_key": list(self.mask_key),
                "optimizer": optimizer_to_json(self.optimizer), "state": list(self.state)}

    @classmethod
    def from_json(cls, raw: dict) -> Train:
        return cls(raw["lr"], raw["l2"], raw["keep"], raw["m"], tuple(raw["mask_key"]),
                   _optimizer(tuple(sorted(raw["optimizer"].items()))), tuple(raw["state"]))


@functools.lru_cache(maxsize=8)
def _optimizer(items: tuple):
    return optimizer_from_json(dict(items))


@dataclass(frozen=True, kw_only=True)
class Event:
    """Where a unit runs (store, run), which unit it is, and how it was delivered."""

    kind: ClassVar[str] = ""
    store: str
    run: str
    ttl: float | None
    step: int
    layer: int = 0
    unit: int = 0
    attempt: int = 0
    speculative: bool = False  # a hedge: a copy sent while an earlier delivery may still be running
    sent: float | None = None
    chaos: dict | None = None  # set by the chaos layer: what to inject into this delivery

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.layer}:{self.unit}"

    def again(self, attempt: int, speculative: bool = False) -> Event:
        return replace(self, attempt=attempt, speculative=speculative)

    def stamped(self, sent: float) -> Event:
        """This event as sent at ``sent``: a shallow copy, as ``replace`` would rebuild every field."""
        event = copy.copy(self)
        object.__setattr__(event, "sent", sent)
        return event

    def to_json(self) -> dict:
        out = {"kind": self.kind}
        for name in _names(type(self)):
            value = getattr(self, name)
            out[name] = value.to_json() if hasattr(value, "to_json") else value
        return out


@functools.cache
def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, kw_only=True)
class TrainingEvent(Event):
    net: NetworkSpec
    train: Train
    X: str = ""  # store keys of the batch
    Y: str = ""
    param_units: int = 1  # how many chunks the parameters of version `step` are stored in


@dataclass(frozen=True, kw_only=True)
class StepEvent(TrainingEvent):
    kind: ClassVar[str] = "step"


@dataclass(frozen=True, kw_only=True)
class RowsEvent(TrainingEvent):
    rows: tuple[int, int] = (0, 0)  # this unit's rows (neurons) of its layer
    units: tuple[int, ...] = ()  # units per layer, to gather a layer's outputs


@dataclass(frozen=True, kw_only=True)
class ForwardEvent(RowsEvent):
    kind: ClassVar[str] = "forward"


@dataclass(frozen=True, kw_only=True)
class LossEvent(RowsEvent):
    kind: ClassVar[str] = "loss"


@dataclass(frozen=True, kw_only=True)
class BackwardEvent(RowsEvent):
    kind: ClassVar[str] = "backward"


@dataclass(frozen=True, kw_only=True)
class ShardEvent(TrainingEvent):
    kind: ClassVar[str] = "shard"
    columns: tuple[int, int] = (0, 0)


@dataclass(frozen=True, kw_only=True)
class ReduceEvent(TrainingEvent):
    kind: ClassVar[str] = "reduce"
    shards: int = 1
    chunk: tuple[int, int] = (0, 0)  # this reducer's range of the flat parameters


@dataclass(frozen=True, kw_only=True)
class LocalEvent(TrainingEvent):
    kind: ClassVar[str] = "local"


@dataclass(frozen=True, kw_only=True)
class MergeEvent(TrainingEvent):
    kind: ClassVar[str] = "merge"
    mode: str = "average"  # or best
    final: bool = False
    inputs: tuple[tuple[str, int, int], ...] = ()  # (phase, layer, unit) of the models merged
    weights: tuple[float, ...] = ()
    X_val: str = ""
    Y_val: str = ""


@dataclass(frozen=True, kw_only=True)
class TrialEvent(Event):
    kind: ClassVar[str] = "trial"
    config: dict
    data_root: str | None = None


EVENTS: dict[str, type[Event]] = {c.kind: c for c in (StepEvent, ForwardEvent, LossEvent, BackwardEvent, ShardEvent,
                                                      ReduceEvent, LocalEvent, MergeEvent, TrialEvent)}
@functools.lru_cache(maxsize=8)
def _spec(text: str) -> NetworkSpec:
    # Every unit of a run gets the same network: read it once per process, layers built once.
    return NetworkSpec.from_json(json.loads(text))


_last: list = [None, None]  # the network dict seen last, and its spec


def _network(raw: dict) -> NetworkSpec:
    # In process (the local engine) every event carries the very dict ``NetworkSpec.to_json``
    # made once, which nobody changes: known by identity, it needs no parsing at all. Holding
    # it keeps its id from being reused.
    if raw is _last[0]:
        return _last[1]
    spec = _spec(json.dumps(raw))
    _last[:] = raw, spec
    return spec


_TYPED = {"net": _network, "train": Train.from_json}


def event_from_json(raw: dict) -> Event:
    cls = EVENTS[raw["kind"]]
    values = {}
    for name in _names(cls):
        if name in raw:
            value = raw[name]
            if name in _TYPED:
                value = _TYPED[name](value)
            elif isinstance(value, list):  # JSON has no tuples
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            values[name] = value
    return cls(**values)
