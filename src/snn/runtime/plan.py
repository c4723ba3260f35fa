"""Granularities: how one training step is cut into function invocations.

* ``network``   one unit runs the whole step (the oracle the others are tested against)
* ``layer``     one unit per layer and phase
* ``block:N``   N neurons (rows of W) of a layer per unit
* ``neuron``    one neuron per unit (``block:1``)
* ``data:K``    K shards of the batch's examples, each through the whole network,
                then one reducer that sums the gradients and updates the parameters
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("network", "layer", "neuron", "block:N", "data:K")


@dataclass(frozen=True)
class Granularity:
    kind: str  # network, rows or data
    size: int = 0  # rows per unit (0: the whole layer), or shards

    @property
    def name(self) -> str:
        if self.kind == "rows":
            return {0: "layer", 1: "neuron"}.get(self.size, f"block:{self.size}")
        return self.kind if self.kind == "network" else f"data:{self.size}"


def parse_granularity(text: str) -> Granularity:
    name, _, arg = text.partition(":")
    fixed = {"network": Granularity("network"), "layer": Granularity("rows", 0), "neuron": Granularity("rows", 1)}
    if text in fixed:
        return fixed[text]
    if name in ("block", "data") and arg.isdigit() and int(arg) > 0:
        return Granularity("rows" if name == "block" else "data", int(arg))
    raise ValueError(f"granularity {text!r} is not one of {', '.join(KINDS)} (N, K whole numbers > 0)")


def row_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """The units of an ``n``-neuron layer: rows ``[r0, r1)`` of ``size`` (0: all)."""
    size = size or n
    return [(r, min(r + size, n)) for r in range(0, n, size)]


def shard_ranges(m: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous column ranges of a batch of ``m`` (sizes differ by at most one)."""
    edges = np.linspace(0, m, min(k, m) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def unit_indices(sizes: list[int], layer: int, r0: int, r1: int) -> np.ndarray:
    """Where rows ``r0:r1`` of layer ``layer`` (W rows, then b entries) sit in ``Params.flat``."""
    offset = 0
    for l in range(layer):
        offset += sizes[l + 1] * (sizes[l] + 1)
    n_prev, n = sizes[layer], sizes[layer + 1]
    w = np.arange(offset + r0 * n_prev, offset + r1 * n_prev)
    b = np.arange(offset + n * n_prev + r0, offset + n * n_prev + r1)
    return np.concatenate([w, b])


def split_rows(p: np.ndarray, rows: int, n_prev: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit's flat slice -> its ``W`` rows ``(rows, n_prev)`` and ``b`` ``(rows, 1)``."""
    return p[: rows * n_prev].reshape(rows, n_prev), p[rows * n_prev :].reshape(rows, 1)
