"""Flatten: images ``(m, C, H, W)`` to the columns ``(C*H*W, m)`` dense layers take. The seam."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..activations import get_activation
from . import Layer, register


@register
class Flatten(NamedTuple):
    kind = "flatten"

    def build(self, in_shape):
        return FlattenLayer(self, tuple(in_shape))

    def to_json(self):
        return {"type": self.kind}


class FlattenLayer(Layer):
    def __init__(self, spec, in_shape):
        self.spec, self.in_shape = spec, in_shape
        self.out_shape = (math.prod(in_shape),)
        self.activation = get_activation("linear")

    def forward(self, p, A):
        return A if A.ndim == 2 else A.reshape(A.shape[0], -1).T

    def input_grad(self, p, dZ, A):
        return dZ.T.reshape(A.shape) if A.ndim != 2 else dZ
