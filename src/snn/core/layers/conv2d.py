"""2-D convolution over images ``(m, C, H, W)``. One neuron is one filter.

    Z[n, f] = sum_c W[f, c] (*) A[n, c] + b[f]      (cross-correlation, as every framework)

Vectorised as im2col: the input's windows come from ``sliding_window_view`` (a view),
are copied once into a ``(C * k * k, m * H_out * W_out)`` matrix, and one BLAS product
with the filters gives every output; the gradients are two more products. ``col2im``
adds the window gradients back with one strided add per kernel offset (``k * k`` of
them), never a loop over examples, pixels or filters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..activations import get_activation
from . import Layer, register


def out_size(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


@register
class Conv2D(NamedTuple):
    filters: int
    kernel: int
    activation: str
    stride: int = 1
    padding: str | int = "valid"  # valid (0), same (k // 2, for odd k and stride 1), or pixels on each side

    kind = "conv2d"

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"a conv2d layer takes images (channels, height, width), not {in_shape}")
        return Conv2DLayer(self, tuple(in_shape))

    def to_json(self):
        return {"type": self.kind, **self._asdict()}


class Conv2DLayer(Layer):
    unit_axis = 1  # Z is (m, filters, H, W)

    def __init__(self, spec: Conv2D, in_shape):
        self.spec, self.in_shape = spec, in_shape
        C, H, W = in_shape
        k, s = spec.kernel, spec.stride
        if spec.padding == "same":
            if k % 2 == 0 or s != 1:
                raise ValueError("padding 'same' needs an odd kernel and stride 1; give padding in pixels instead")
            self.pad = k // 2
        else:
            self.pad = 0 if spec.padding == "valid" else int(spec.padding)
        Ho, Wo = out_size(H, k, s, self.pad), out_size(W, k, s, self.pad)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"a {k}x{k} kernel does not fit an input of {H}x{W} (padding {self.pad})")
        self.out_shape = (spec.filters, Ho, Wo)
        self.activation = get_activation(spec.activation)
        self.units = spec.filters

    @property
    def param_shapes(self):
        C, k = self.in_shape[0], self.spec.kernel
        return {"W": (self.units, C, k, k), "b": (self.units, 1)}

    @property
    def fan_in(self):
        return self.in_shape[0] * self.spec.kernel**2

    @property
    def fan_out(self):
        return self.units * self.spec.kernel**2

    def images(self, A):
        """``A`` as ``(m, C, H, W)``: the network's input comes as columns (features in C, H, W order)."""
        return A.T.reshape(-1, *self.in_shape) if A.ndim == 2 else A

    def cols(self, A):
        """The im2col matrix ``(C * k * k, m * H_out * W_out)`` of an image batch.

        Channels first and examples second (``CNHW``): then the forward product gives Z
        with its filters first, which the next layer reads through a transposed view,
        and both gradients are single products with no copy of this, the largest array.
        """
        k, s, p = self.spec.kernel, self.spec.stride, self.pad
        if p:
            A = np.pad(A, ((0, 0), (0, 0), (p, p), (p, p)))
        win = sliding_window_view(A, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (m, C, Ho, Wo, k, k)
        m, C, Ho, Wo = win.shape[:4]
        return win.transpose(1, 4, 5, 0, 2, 3).reshape(C * k * k, m * Ho * Wo)

    def forward(self, p, A):
        A = self.images(A)
        W = p["W"]
        F, (_, Ho, Wo) = W.shape[0], self.out_shape
        Z = W.reshape(F, -1) @ self.cols(A)  # (F, m Ho Wo)
        Z += p["b"]
        return Z.reshape(F, A.shape[0], Ho, Wo).transpose(1, 0, 2, 3)  # (m, F, Ho, Wo), filters first in memory

    @staticmethod
    def _by_filter(dZ):
        """dZ ``(m, F, Ho, Wo)`` as ``(F, m Ho Wo)``: free when it is laid out as ``forward`` returns Z."""
        return dZ.transpose(1, 0, 2, 3).reshape(dZ.shape[1], -1)

    def backward(self, p, A, dZ, g):
        dZf = self._by_filter(dZ)
        np.matmul(dZf, self.cols(self.images(A)).T, out=g["W"].reshape(g["W"].shape[0], -1))
        np.sum(dZf, axis=1, out=g["b"].reshape(-1))

    def input_grad(self, p, dZ, A):
        W = p["W"]
        F, (C, H, Wd), k, s, pad = W.shape[0], self.in_shape, self.spec.kernel, self.spec.stride, self.pad
        m, _, Ho, Wo = dZ.shape
        dcols = (W.reshape(F, -1).T @ self._by_filter(dZ)).reshape(C, k, k, m, Ho, Wo)
        dA = np.zeros((C, m, H + 2 * pad, Wd + 2 * pad), dtype=dcols.dtype)
        for i in range(k):  # one strided add per kernel offset
            for j in range(k):
                dA[:, :, i : i + s * Ho : s, j : j + s * Wo : s] += dcols[:, i, j]
        dA = dA.transpose(1, 0, 2, 3)
        return dA[:, :, pad : pad + H, pad : pad + Wd] if pad else dA
