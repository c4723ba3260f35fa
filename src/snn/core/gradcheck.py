"""Gradient checking: backprop against centred finite differences.

For a parameter ``theta_i``: ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)``.
The relative error of a tensor is ``||g - g_num|| / (||g|| + ||g_num||)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Network, Params


@dataclass(frozen=True)
class TensorCheck:
    name: str
    checked: int  # entries compared
    relative_error: float
    max_abs_error: float  # tells real errors from noise when the gradient itself is tiny


def numerical_gradient(cost, theta: np.ndarray, index: int, eps: float) -> float:
    saved = theta[index]
    theta[index] = saved + eps
    plus = cost()
    theta[index] = saved - eps
    minus = cost()
    theta[index] = saved
    return (plus - minus) / (2 * eps)


def relative_error(g: np.ndarray, g_num: np.ndarray) -> float:
    denom = np.linalg.norm(g) + np.linalg.norm(g_num)
    return 0.0 if denom == 0 else float(np.linalg.norm(g - g_num) / denom)


def check_gradients(
    net: Network, params: Params, X, Y, l2=0.0, eps=1e-6, max_entries=64, seed=0
) -> list[TensorCheck]:
    """Compare every tensor's gradient with finite differences (float64 advised).

    Tensors larger than ``max_entries`` are checked on a seeded random sample.
    """
    _, grads, _ = net.gradients(params, X, Y, l2)

    def cost():
        return net.cost(params, net.forward(params, X), Y, l2)

    rng = np.random.default_rng(seed)
    checks = []
    analytic = grads.tensors()
    for name, tensor in params.tensors().items():
        flat, g = tensor.reshape(-1), analytic[name].reshape(-1)
        n = flat.size
        picked = np.arange(n) if n <= max_entries else rng.choice(n, max_entries, replace=False)
        g_num = np.array([numerical_gradient(cost, flat, i, eps) for i in picked])
        error = relative_error(g[picked], g_num)
        checks.append(TensorCheck(name, len(picked), error, float(np.abs(g[picked] - g_num).max())))
    return checks
