"""Granularities: how one training step is cut into function invocations. Plug-ins.

* ``network``   one unit runs the whole step (the oracle the others are tested against)
* ``layer``     one unit per layer and phase
* ``block:N``   N neurons of a layer per unit (rows of a dense ``W``, filters of a convolution)
* ``neuron``    one neuron per unit (``block:1``)
* ``data:K``    K shards of the batch's examples, each through the whole network,
                then one reducer that sums the gradients and updates the parameters

A granularity says where parameters live (``units``: the row ranges of each layer,
or one unit for the whole network) and gives the coordinator the stages of a step
(``step``); the coordinator keeps the barrier, the retries and the store layout.
To add one: a class with ``name``, ``units`` and ``step``, and an entry in
``GRANULARITIES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..core.network import layout_of
from ..errors import SnnError
from .events import BackwardEvent, ForwardEvent, LossEvent, ReduceEvent, ShardEvent, StepEvent

if TYPE_CHECKING:
    from ..core.network import NetworkSpec
    from .coordinator import Coordinator, StepInputs


@runtime_checkable
class Granularity(Protocol):
    name: str
    kind: str  # network, rows or data
    size: int

    def units(self, spec: NetworkSpec) -> list[list[tuple[int, int]]] | None:
        """Row ranges of every layer's units, or ``None``: the parameters are one unit."""

    def step(self, coordinator: Coordinator, inputs: StepInputs) -> tuple[float, int]:
        """Run one step through ``coordinator.stage``; return (cost, correct predictions)."""


@dataclass(frozen=True)
class WholeNetwork:
    """Forward, cost, backward and update of the whole network in one invocation."""

    kind = "network"
    size: int = 0
    name = "network"

    def units(self, spec):
        return None

    def step(self, c, inputs):
        (r,) = c.stage([StepEvent(**inputs.base)])
        return r["cost"], r["correct"]


@dataclass(frozen=True)
class Rows:
    """``size`` neurons of a layer per unit (0: the whole layer): forward 1..L, loss, backward L..1."""

    size: int
    kind = "rows"

    @property
    def name(self) -> str:
        return {0: "layer", 1: "neuron"}.get(self.size, f"block:{self.size}")

    def units(self, spec):
        kinds = {layer.spec.kind for layer in spec.built} - {"dense"}
        if kinds:
            raise SnnError(f"granularity {self.name!r} splits dense layers into neurons; this network has "
                           f"{', '.join(sorted(kinds))} layers; help: use --granularity network or data:K")
        return [row_ranges(layer.units, self.size) for layer in spec.built]

    def step(self, c, inputs):
        base = {**inputs.base, "units": tuple(len(r) for r in c.units)}
        L, sumsq = len(c.units), 0.0
        for l in range(L):
            fwd = c.stage([ForwardEvent(**base, layer=l, unit=u, rows=rows) for u, rows in enumerate(c.units[l])])
            sumsq += sum(r["sumsq"] for r in fwd)
        (loss,) = c.stage([LossEvent(**base, layer=L, unit=0)])
        for l in reversed(range(L)):
            c.stage([BackwardEvent(**base, layer=l, unit=u, rows=rows) for u, rows in enumerate(c.units[l])])
        return inputs.with_l2(loss["cost"], sumsq), loss["correct"]


@dataclass(frozen=True)
class Shards:
    """``size`` shards of the batch's examples (forward and backward), then the reducers."""

    size: int
    kind = "data"

    @property
    def name(self) -> str:
        return f"data:{self.size}"

    def units(self, spec):
        return None

    def step(self, c, inputs):
        cols = shard_ranges(inputs.train.m, self.size)
        shards = c.stage([ShardEvent(**inputs.base, unit=k, columns=cc) for k, cc in enumerate(cols)])
        reduced = c.stage([ReduceEvent(**inputs.base, unit=u, shards=len(cols),
                                       chunk=(sl.start or 0, sl.stop if sl.stop is not None else c.spec.n_params))
                           for _, u, sl in c.slots])
        cost = sum(r["cost"] for r in shards)
        return inputs.with_l2(cost, sum(r["sumsq"] for r in reduced)), sum(r["correct"] for r in shards)


FIXED = {"network": WholeNetwork(), "layer": Rows(0), "neuron": Rows(1)}
SIZED = {"block": Rows, "data": Shards}  # name:N, N > 0
GRANULARITIES = (*FIXED, *(f"{name}:N" for name in SIZED))
KINDS = ("network", "layer", "neuron", "block:N", "data:K")  # as the docs and errors spell them


def parse_granularity(text: str) -> Granularity:
    if text in FIXED:
        return FIXED[text]
    name, _, arg = text.partition(":")
    if name in SIZED and arg.isdigit() and int(arg) > 0:
        return SIZED[name](int(arg))
    raise ValueError(f"granularity {text!r} is not one of {', '.join(KINDS)} (N, K whole numbers > 0)")


def row_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """The units of an ``n``-neuron layer: rows ``[r0, r1)`` of ``size`` (0: all)."""
    size = size or n
    return [(r, min(r + size, n)) for r in range(0, n, size)]


def shard_ranges(m: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous column ranges of a batch of ``m`` (sizes differ by at most one)."""
    edges = np.linspace(0, m, min(k, m) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def unit_indices(layout, layer: int, r0: int, r1: int) -> np.ndarray:
    """Where rows ``r0:r1`` of layer ``layer`` (every tensor's rows, W then b) sit in ``Params.flat``.

    ``layout``: a ``NetworkSpec``, a ``Layout`` or dense ``sizes``.
    """
    return layout_of(layout).unit_indices(layer, r0, r1)
