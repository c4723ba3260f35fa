"""Weight initializers. Biases always start at zero.

``rng`` is either a ``numpy.random.Generator`` or, in the ``legacy`` random mode, a
``numpy.random.RandomState``: both have ``standard_normal`` and ``uniform``, and
``RandomState.standard_normal((n, p))`` draws exactly what ``randn(n, p)`` draws, so
the legacy mode reproduces the classic course notebooks digit for digit.
"""

from __future__ import annotations

import math

import numpy as np


def scaled(rng, n, n_prev, factor=0.01):
    """W ~ N(0, 1) * factor (the course's 2-layer network uses 0.01)."""
    return rng.standard_normal((n, n_prev)) * factor


def xavier(rng, n, n_prev):
    """W ~ N(0, 1) / sqrt(n_prev) (the course's deep network)."""
    return rng.standard_normal((n, n_prev)) / math.sqrt(n_prev)


def he(rng, n, n_prev):
    """W ~ N(0, 1) * sqrt(2 / n_prev), suited to relu layers."""
    return rng.standard_normal((n, n_prev)) * math.sqrt(2 / n_prev)


def glorot_uniform(rng, n, n_prev):
    """W ~ U(-r, r) with r = sqrt(6 / (n_prev + n))."""
    r = math.sqrt(6 / (n_prev + n))
    return rng.uniform(-r, r, (n, n_prev))


INITIALIZERS = {f.__name__: f for f in (scaled, xavier, he, glorot_uniform)}

RANDOM_MODES = ("legacy", "generator")


def make_rng(seed: int, mode: str = "generator"):
    """The random source for initial weights."""
    if mode == "legacy":
        return np.random.RandomState(seed)
    if mode == "generator":
        return np.random.default_rng(seed)
    raise ValueError(f"unknown random mode {mode!r}; allowed: {', '.join(RANDOM_MODES)}")


def initial_weights(sizes, init, seed, mode="generator", scale=None):
    """Draw W1, W2, ... in order (no other draws in between); return float64 arrays.

    ``sizes`` is ``[n_x, n_1, ..., n_L]``; ``scale`` overrides the factor of ``scaled``.
    """
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; allowed: {', '.join(INITIALIZERS)}")
    rng = make_rng(seed, mode)
    draw = INITIALIZERS[init]
    kwargs = {"factor": scale} if scale is not None else {}
    return [draw(rng, n, n_prev, **kwargs) for n_prev, n in zip(sizes[:-1], sizes[1:])]
