"""Losses: the mean cost over the ``m`` examples of a batch, and its gradient.

Every ``gradient`` is the derivative of the *mean* cost, so it already carries the
``1/m``; backpropagation then needs no further division.

When the output activation is the loss's natural partner (sigmoid with binary
cross-entropy, softmax with categorical cross-entropy) the cost is computed from
the logits ``Z`` with the log-sum-exp trick and the output delta is simply
``(A - Y) / m``: finite for any saturated output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _clip(A):
    eps = np.finfo(A.dtype).eps
    return np.clip(A, eps, 1 - eps)


def bce(A, Y):
    """-1/m sum[y log a + (1 - y) log(1 - a)], A and Y of shape (k, m)."""
    A = _clip(A)
    return float(-(Y * np.log(A) + (1 - Y) * np.log1p(-A)).sum() / Y.shape[1])


def bce_gradient(A, Y):
    A = _clip(A)
    return (A - Y) / (A * (1 - A)) / Y.shape[1]


def bce_from_logits(Z, Y):
    """Same cost with a = sigmoid(z): max(z, 0) - z y + log(1 + e^-|z|)."""
    return float((np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))).sum() / Y.shape[1])


def cce(A, Y):
    """-1/m sum y log a, with one-hot Y of shape (k, m)."""
    return float(-(Y * np.log(_clip(A))).sum() / Y.shape[1])


def cce_gradient(A, Y):
    return -Y / _clip(A) / Y.shape[1]


def cce_from_logits(Z, Y):
    """Same cost with a = softmax(z): logsumexp(z) - sum y z, per column."""
    top = Z.max(axis=0, keepdims=True)
    lse = top + np.log(np.exp(Z - top).sum(axis=0, keepdims=True))
    return float((lse - (Y * Z).sum(axis=0, keepdims=True)).sum() / Y.shape[1])


def mse(A, Y):
    """1/(2m) sum (a - y)^2."""
    D = A - Y
    return float((D * D).sum() / (2 * Y.shape[1]))


def mse_gradient(A, Y):
    return (A - Y) / Y.shape[1]


@dataclass(frozen=True)
class Loss:
    name: str
    cost: Callable[[np.ndarray, np.ndarray], float]
    gradient: Callable[[np.ndarray, np.ndarray], np.ndarray]
    partner: str | None = None  # output activation whose fused form is used
    cost_from_logits: Callable[[np.ndarray, np.ndarray], float] | None = None


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("bce", bce, bce_gradient, "sigmoid", bce_from_logits),
        Loss("cce", cce, cce_gradient, "softmax", cce_from_logits),
        Loss("mse", mse, mse_gradient),
    )
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(LOSSES)}") from None


def output_cost(loss: Loss, activation: str, Z, A, Y) -> float:
    """Cost of the output layer, through the logits when that is exact and stable."""
    if loss.partner == activation:
        return loss.cost_from_logits(Z, Y)
    return loss.cost(A, Y)


def output_delta(loss: Loss, activation, Z, A, Y):
    """dZ of the output layer, i.e. d(mean cost)/dZ."""
    if loss.partner == activation.name:
        return (A - Y) / Y.shape[1]
    return activation.backward(loss.gradient(A, Y), Z, A)
