"""Granularities: how one training step is cut into function invocations. Plug-ins.

* ``network``   one unit runs the whole step (the oracle the others are tested against)
* ``layer``     one unit per layer and phase
* ``block:N``   N neurons of a layer per unit (rows of a dense ``W``, filters of a convolution)
* ``neuron``    one neuron per unit (``block:1``): a dense row, or one convolution filter
* ``data:K``    K shards of the batch's examples, each through the whole network,
                then one reducer that sums the gradients and updates the parameters

A granularity says where parameters live (``units``: the row ranges of each layer,
or one unit for the whole network) and gives the coordinator the stages of a step
(``step``); the coordinator keeps the barrier, the retries and the store layout.
To add one: a class with ``name``, ``units`` and ``step``, and an entry in
``GRANULARITIES``.

Layers without parameters (pooling, flatten) have no units of their own. Under
``layer``/``block``/``neuron`` they run inside the units of the layer before them: a
convolution unit owns some filters, so it owns those channels of its output, and
pooling and flatten act on each channel alone; the unit pools (and flattens) its own
channels and sends the smaller result on. Those that open the network, before any
layer with neurons, run in the first layer's units. See ``Span``.
"""

from __future__ import annotations

import functools
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
        if not spec.built[-1].units:
            raise SnnError(f"granularity {self.name!r} needs a network that ends in a layer with neurons, "
                           f"not {spec.built[-1].spec.kind}")
        return [row_ranges(layer.units, self.size) for layer in spec.built]

    def step(self, c, inputs):
        base = {**inputs.base, "units": tuple(len(r) for r in c.units)}
        L, sumsq = len(c.units), 0.0
        stages = [l for l in range(L) if c.units[l]]  # layers with neurons; the others run inside them
        for l in stages:
            fwd = c.stage([ForwardEvent(**base, layer=l, unit=u, rows=rows) for u, rows in enumerate(c.units[l])])
            sumsq += sum(r["sumsq"] for r in fwd)
        (loss,) = c.stage([LossEvent(**base, layer=L, unit=0)])
        for l in reversed(stages):
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
    """The units of an ``n``-neuron layer: rows ``[r0, r1)`` of ``size`` (0: all); none for no neurons."""
    if n == 0:
        return []
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


@dataclass(frozen=True)
class Span:
    """A layer with neurons (``layer``), and what its units run besides it.

    ``head``: the parameter-free layers that open the network, run on the input by
    the first layer's units. ``tail``: the parameter-free layers after ``layer`` up to
    the next layer with neurons; they act channel by channel, so a unit runs them on
    its own channels. ``prev``/``next``: the layers with neurons before and after
    (``None`` at the ends); ``out_axis``: the axis along which the units' outputs stack.
    """

    layer: int
    head: tuple[int, ...]
    tail: tuple[int, ...]
    prev: int | None
    next: int | None
    out_axis: int


@functools.lru_cache(maxsize=32)
def span_of(spec: NetworkSpec, layer: int) -> Span:
    built = spec.built
    with_units = [l for l, b in enumerate(built) if b.units]
    i = with_units.index(layer)
    prev = with_units[i - 1] if i else None
    nxt = with_units[i + 1] if i + 1 < len(with_units) else None
    end = nxt if nxt is not None else len(built)
    head = tuple(range(layer)) if prev is None else ()
    tail = tuple(range(layer + 1, end))
    return Span(layer, head, tail, prev, nxt, built[end - 1].unit_axis)


def unit_part(a: np.ndarray, axis: int, rows: tuple[int, int], units: int) -> np.ndarray:
    """The part of a layer's stacked output (or its gradient) that rows ``r0:r1`` of its ``units`` own.

    Each neuron owns the same share of ``axis``: one channel of a pooled map, or the
    ``H * W`` features of one channel once flattened.
    """
    per = a.shape[axis] // units
    index = [slice(None)] * a.ndim
    index[axis] = slice(rows[0] * per, rows[1] * per)
    return a[tuple(index)]
