"""Weight initializers. Biases always start at zero.

``rng`` is either a ``numpy.random.Generator`` or, in the ``legacy`` random mode, a
``numpy.random.RandomState``: both have ``standard_normal`` and ``uniform``, and
``RandomState.standard_normal((n, p))`` draws exactly what ``randn(n, p)`` draws, so
the legacy mode reproduces the classic course notebooks digit for digit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


def scaled(rng, shape, fan_in, fan_out, factor=0.01):
    """W ~ N(0, 1) * factor (the course's 2-layer network uses 0.01)."""
    return rng.standard_normal(shape) * factor


def xavier(rng, shape, fan_in, fan_out):
    """W ~ N(0, 1) / sqrt(fan_in) (the course's deep network)."""
    return rng.standard_normal(shape) / math.sqrt(fan_in)


def he(rng, shape, fan_in, fan_out):
    """W ~ N(0, 1) * sqrt(2 / fan_in), suited to relu layers."""
    return rng.standard_normal(shape) * math.sqrt(2 / fan_in)


def glorot_uniform(rng, shape, fan_in, fan_out):
    """W ~ U(-r, r) with r = sqrt(6 / (fan_in + fan_out))."""
    r = math.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-r, r, shape)


def zeros(rng, shape, fan_in, fan_out):
    """W = 0, as the course's logistic regression starts. Draws nothing, so ``rng`` is left as it was."""
    return np.zeros(shape)


INITIALIZERS = {f.__name__: f for f in (scaled, xavier, he, glorot_uniform, zeros)}

# Initializers that give every unit of a layer the same weights. Units started equal get
# equal gradients and stay equal, so these are sound only where no layer feeds another
# layer with weights: one weighted layer in all (logistic or softmax regression, perhaps
# after a flatten or a pooling layer, which have no weights and so nothing to keep equal).
SYMMETRIC = ("zeros",)


def check_symmetry(init: str, weighted_layers: int) -> None:
    """Refuse a symmetric initializer for a network with more than one layer with weights."""
    if init in SYMMETRIC and weighted_layers > 1:
        others = ", ".join(n for n in INITIALIZERS if n not in SYMMETRIC)
        raise ValueError(f"init {init!r} is only allowed for a network with no hidden layer (logistic or softmax "
                         "regression): hidden units started equal get equal gradients and never become different; "
                         f"use {others}")


def check_scale(init: str, scale) -> None:
    """``scale`` is the factor of ``scaled`` alone; the others have no factor to set."""
    if scale is not None and init != "scaled":
        raise ValueError(f"init_scale is the factor of init 'scaled' only; init {init!r} takes none: remove init_scale")


RANDOM_MODES = ("legacy", "generator")


def make_rng(seed: int, mode: str = "generator"):
    """The random source for initial weights."""
    if mode == "legacy":
        return np.random.RandomState(seed)
    if mode == "generator":
        return np.random.default_rng(seed)
    raise ValueError(f"unknown random mode {mode!r}; allowed: {', '.join(RANDOM_MODES)}")


def initial_weights(layers, init, seed, mode="generator", scale=None):
    """Draw the weights of every layer that has them, in order (no other draws in between).

    ``layers`` is a ``NetworkSpec``'s built layers, or dense ``sizes`` ``[n_x, n_1, ..., n_L]``;
    each weight tensor is drawn in its layer's shape, scaled by the layer's fan-in and
    fan-out. ``scale`` overrides the factor of ``scaled``. Returns float64 arrays. A symmetric
    initializer (``zeros``) is refused where more than one layer has weights.
    """
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; allowed: {', '.join(INITIALIZERS)}")
    check_scale(init, scale)
    if all(isinstance(n, int) for n in layers):
        layers = [_Fans((n, p), p, n) for p, n in zip(layers[:-1], layers[1:])]
    else:
        layers = [_Fans(l.param_shapes[l.weights], l.fan_in, l.fan_out) for l in layers if l.weights]
    check_symmetry(init, len(layers))
    rng = make_rng(seed, mode)
    draw = INITIALIZERS[init]
    kwargs = {"factor": scale} if scale is not None else {}
    return [draw(rng, l.shape, l.fan_in, l.fan_out, **kwargs) for l in layers]


class _Fans(NamedTuple):
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
