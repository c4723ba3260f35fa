"""Layer kinds: one module each, behind one small interface and one registry.

A layer *spec* is what a config or a model file names (``Dense(128, "relu")``); it is
plain data and knows how to ``build`` itself onto an input shape. The *layer* that
``build`` returns holds the shapes and does the math:

    param_shapes       {"W": shape, "b": shape} in buffer order ({} when it has none)
    fan_in, fan_out    what the initializers scale by
    units              its neurons: rows of W for dense, filters for a convolution
    unit_axis          the axis of its output along which units are stacked
    forward(p, A)      Z (the pre-activation), from its tensors ``p`` and the input A
    backward(p, A, dZ, g)       writes d(cost)/d(its tensors) into ``g``
    input_grad(p, dZ, A)        d(cost)/dA: its share of the gradient sent back

``p`` and ``g`` are dicts of views into the flat buffers (``Params``). A runtime
unit owns rows ``r0:r1`` along the first axis of every tensor of its layer, so the
same three functions, called with a unit's rows, give the unit's part of ``Z``
(along ``unit_axis``), its own gradient, and its share of ``dA``; the shares of a
layer's units sum to the whole ``dA``.

To add a layer kind: write one module here with a spec (``kind``, ``build``,
``to_json``) and its layer, call ``register`` on the spec, and import the module
below. Its test goes in ``tests/test_layers.py``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np

from ..activations import Activation


class LayerSpec(Protocol):
    kind: ClassVar[str]

    def build(self, in_shape: tuple[int, ...]) -> Layer: ...

    def to_json(self) -> dict[str, Any]: ...


class Layer:
    """The math of one layer on a given input shape. Stateless: tensors come in as arguments."""

    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    activation: Activation
    units: int = 0
    unit_axis: int = 0

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes.values())

    @property
    def fan_in(self) -> int:
        return 0

    @property
    def fan_out(self) -> int:
        return 0

    @property
    def weights(self) -> str | None:
        """The tensor that initializers draw and L2 applies to (biases start at a constant)."""
        return "W" if "W" in self.param_shapes else None

    def forward(self, p: dict[str, np.ndarray], A: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, p, A, dZ, g) -> None:
        """Parameter gradients; layers without parameters have none."""

    def input_grad(self, p, dZ, A) -> np.ndarray:
        raise NotImplementedError


LAYERS: dict[str, type] = {}


def register(spec_class: type) -> type:
    """Make a spec class known by its ``kind`` (configs and model files name it as ``type``)."""
    LAYERS[spec_class.kind] = spec_class
    return spec_class


def layer_from_json(entry: dict[str, Any]) -> LayerSpec:
    """A spec from its JSON form; ``type`` defaults to ``dense``, as in every config before it existed."""
    entry = dict(entry)
    kind = entry.pop("type", "dense")
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; allowed: {', '.join(LAYERS)}")
    return LAYERS[kind](**entry)


# Each module registers its kinds when imported.
from .dense import Dense  # noqa: E402
from .conv2d import Conv2D  # noqa: E402
from .pool import AvgPool2D, MaxPool2D  # noqa: E402
from .flatten import Flatten  # noqa: E402

__all__ = ["LAYERS", "AvgPool2D", "Conv2D", "Dense", "Flatten", "Layer", "LayerSpec", "MaxPool2D",
           "layer_from_json", "register"]
