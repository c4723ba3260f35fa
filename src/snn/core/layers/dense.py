"""Fully connected: ``Z = W A + b``, examples as columns. One neuron is one row of ``W``.

    dW = dZ A^T        db = sum_columns(dZ)        dA = W^T dZ
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..activations import get_activation
from . import Layer, register


@register
class Dense(NamedTuple):
    """``units`` neurons with one activation. A tuple, so ``units, activation = spec`` reads as before."""

    units: int
    activation: str

    kind = "dense"

    def build(self, in_shape: tuple[int, ...]) -> DenseLayer:
        if len(in_shape) != 1:
            raise ValueError(f"a dense layer takes a vector, not an input of shape {in_shape}; "
                             "help: put a flatten layer before it")
        return DenseLayer(self, in_shape)

    def to_json(self) -> dict:
        return {"type": self.kind, "units": self.units, "activation": self.activation}


class DenseLayer(Layer):
    unit_axis = 0  # Z is (units, m)

    def __init__(self, spec: Dense, in_shape: tuple[int, ...]):
        self.spec, self.in_shape, self.out_shape = spec, in_shape, (spec.units,)
        self.activation = get_activation(spec.activation)
        self.units = spec.units

    @property
    def param_shapes(self):
        return {"W": (self.units, self.fan_in), "b": (self.units, 1)}

    @property
    def fan_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def fan_out(self) -> int:
        return self.units

    def forward(self, p, A):
        Z = p["W"] @ A
        Z += p["b"]
        return Z

    def backward(self, p, A, dZ, g):
        np.matmul(dZ, A.T, out=g["W"])
        np.sum(dZ, axis=1, keepdims=True, out=g["b"])

    def input_grad(self, p, dZ, A):
        return p["W"].T @ dZ
