"""Max and average pooling over images ``(m, C, H, W)``, channel by channel. No parameters.

A window's entries at one offset ``(i, j)`` are one strided view of the input, so
pooling is ``k * k`` elementwise passes over the output (never a loop over examples,
channels or pixels), in whatever memory order the input has; the gradient goes back
the same way. Max pooling sends each window's gradient to its first maximum (so
overlapping windows and ties give a well-defined subgradient).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

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

    def offsets(self, A):
        """Every window's entry at each offset ``(i, j)``: ``k * k`` strided views of ``A``, one per offset."""
        k, s, (_, Ho, Wo) = self.k, self.s, self.out_shape
        for i in range(k):
            for j in range(k):
                yield (slice(None), slice(None), slice(i, i + s * Ho, s), slice(j, j + s * Wo, s))

    def along(self, A, axis):
        """Side-by-side windows (stride = size): the ``k`` strided views of ``A`` along ``axis`` (2: rows,
        3: columns) that each hold one offset of every window, cropped to whole windows."""
        k, (_, Ho, Wo) = self.k, self.out_shape
        if axis == 3:
            return [A[:, :, : k * Ho, j : k * Wo : k] for j in range(k)]
        return [A[:, :, i : k * Ho : k, : k * Wo] for i in range(k)]

    def forward(self, p, A):
        if A.ndim == 2:
            A = A.T.reshape(-1, *self.in_shape)
        if self.how == "max" and self.s == self.k:
            return functools.reduce(np.maximum, self.along(functools.reduce(np.maximum, self.along(A, 3)), 2))
        views = (A[at] for at in self.offsets(A))
        Z = next(views).copy(order="K")  # in the memory order of A, so every pass below runs in step
        combine = np.maximum if self.how == "max" else np.add
        for v in views:  # k * k - 1 elementwise passes over the output, in the input's memory order
            combine(Z, v, out=Z)
        if self.how == "avg":
            Z /= self.k * self.k
        return Z

    def input_grad(self, p, dZ, A):
        if A.ndim == 2:
            A = A.T.reshape(-1, *self.in_shape)
        dA = np.zeros_like(A, dtype=dZ.dtype)
        apart = self.s >= self.k  # windows do not overlap: each input gets at most one share
        if self.how == "avg":
            share = dZ / (self.k * self.k)
            for at in self.offsets(A):
                dA[at] += share
            return dA
        if self.s == self.k:
            return self._tiled_max_grad(dZ, A, dA)
        Z = self.forward(p, A)
        taken = np.zeros(Z.shape, bool)  # windows whose first maximum an earlier offset already claimed
        hit = np.empty(Z.shape, bool)
        for at in self.offsets(A):  # the first maximum of each window, offset by offset
            np.equal(A[at], Z, out=hit)
            hit &= ~taken
            taken |= hit
            if apart:  # each input is in one window at most: the product is its gradient
                np.multiply(hit, dZ, out=dA[at])
            else:
                dA[at] += hit * dZ
        return dA

    def _tiled_max_grad(self, dZ, A, dA):
        """Side-by-side max windows, separably: each row's first maximum (along the columns), then each
        window's first row holding the window's maximum. That is the window's first maximum in
        row-major order, found in about three passes over ``A`` instead of three per offset."""
        M, col = first_max(self.along(A, 3))  # (m, C, k Ho, Wo): the maximum of each window row
        _, row = first_max(self.along(M, 2))
        dM = np.empty_like(M)
        for i, view in enumerate(self.along(dM, 2)):
            np.multiply(dZ, row == i, out=view)
        for j, view in enumerate(self.along(dA, 3)):
            np.multiply(dM, col == j, out=view)
        return dA


def first_max(views: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The elementwise maximum of ``views``, and for each entry the index of the first view holding it."""
    best, which = views[0], None
    for j, v in enumerate(views[1:], 1):
        later = v > best  # strictly greater: a tie keeps the earlier view
        if which is None:
            which = later.view(np.int8)  # 0 or 1, with no pass over the data
        else:
            np.copyto(which, j, where=later)
        best = np.maximum(best, v)
    return best, which if which is not None else np.zeros_like(best, dtype=np.int8)
