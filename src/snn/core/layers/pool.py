"""Max and average pooling over images ``(m, C, H, W)``, channel by channel. No parameters.

Windows come from ``sliding_window_view``; the gradient goes back with one strided add
per window offset, as in ``conv2d``. Max pooling sends each window's gradient to its
first maximum (so overlapping windows and ties give a well-defined subgradient).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..activations import get_activation
from . import Layer, register
from .conv2d import out_size


class _PoolSpec(NamedTuple):
    size: int = 2
    stride: int | None = None  # default: the window size (windows side by side)

    def to_json(self):
        return {"type": self.kind, **self._asdict()}


@register
class MaxPool2D(_PoolSpec):
    kind = "maxpool2d"

    def build(self, in_shape):
        return PoolLayer(self, tuple(in_shape), "max")


@register
class AvgPool2D(_PoolSpec):
    kind = "avgpool2d"

    def build(self, in_shape):
        return PoolLayer(self, tuple(in_shape), "avg")


class PoolLayer(Layer):
    unit_axis = 1

    def __init__(self, spec, in_shape, how):
        if len(in_shape) != 3:
            raise ValueError(f"a {spec.kind} layer takes images (channels, height, width), not {in_shape}")
        self.spec, self.in_shape, self.how = spec, in_shape, how
        self.k, self.s = spec.size, spec.stride or spec.size
        C, H, W = in_shape
        Ho, Wo = out_size(H, self.k, self.s, 0), out_size(W, self.k, self.s, 0)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"a {self.k}x{self.k} window does not fit an input of {H}x{W}")
        self.out_shape = (C, Ho, Wo)
        self.activation = get_activation("linear")

    def windows(self, A):
        return sliding_window_view(A, (self.k, self.k), axis=(2, 3))[:, :, :: self.s, :: self.s]

    def forward(self, p, A):
        if A.ndim == 2:
            A = A.T.reshape(-1, *self.in_shape)
        win = self.windows(A)
        return win.max(axis=(4, 5)) if self.how == "max" else win.mean(axis=(4, 5))

    def input_grad(self, p, dZ, A):
        if A.ndim == 2:
            A = A.T.reshape(-1, *self.in_shape)
        k, s = self.k, self.s
        m, C, Ho, Wo = dZ.shape
        if self.how == "max":
            win = self.windows(A).reshape(m, C, Ho, Wo, k * k)
            first = win.argmax(axis=4)  # the first maximum of each window
            share = (np.arange(k * k) == first[..., None]) * dZ[..., None]  # (m, C, Ho, Wo, k*k)
        else:
            share = np.broadcast_to(dZ[..., None] / (k * k), (m, C, Ho, Wo, k * k))
        share = share.reshape(m, C, Ho, Wo, k, k)
        dA = np.zeros(A.shape, dtype=dZ.dtype)
        for i in range(k):
            for j in range(k):
                dA[:, :, i : i + s * Ho : s, j : j + s * Wo : s] += share[..., i, j]
        return dA
