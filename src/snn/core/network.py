"""A fully connected network: parameters, forward pass, cost and backward pass.

Per layer ``l`` (``A0 = X``)::

    Z[l] = W[l] @ A[l-1] + b[l]          A[l] = g[l](Z[l])
    dW[l] = dZ[l] @ A[l-1].T             db[l] = sum_columns(dZ[l])
    dA[l-1] = W[l].T @ dZ[l]             dZ[l-1] = dA[l-1] * g'[l-1](Z[l-1])

``dZ`` carries the ``1/m`` of the mean cost from the output layer down (see
``losses``), and the gradient with respect to the input ``X`` is never formed:
nobody needs it and it is as costly as the first layer's weight gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import Activation, get_activation
from .losses import Loss, get_loss, output_cost, output_delta


def param_count(sizes) -> int:
    """Weights and biases of layers ``sizes = [n_x, n_1, ..., n_L]``."""
    return sum(n * (p + 1) for p, n in zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture: input size, then ``(units, activation)`` per layer, and the loss."""

    n_input: int
    layers: tuple[tuple[int, str], ...]
    loss: str

    @property
    def sizes(self) -> list[int]:
        return [self.n_input] + [units for units, _ in self.layers]

    @property
    def n_params(self) -> int:
        return param_count(self.sizes)


class Params:
    """All weights and biases of a network in one flat buffer.

    ``W[l]`` (shape ``(n_l, n_prev)``) and ``b[l]`` (shape ``(n_l, 1)``) are views into
    ``flat``, so an optimizer updates every tensor with a few whole-buffer operations
    and a gradient can be summed, sent or stored as one array. Lists are 0-based:
    ``W[0]`` is the course's ``W1``.
    """

    def __init__(self, sizes, flat: np.ndarray):
        self.sizes = list(sizes)
        self.flat = flat
        need = param_count(self.sizes)
        if flat.shape != (need,):
            raise ValueError(f"flat buffer has shape {flat.shape}, layers {self.sizes} need {need} values")
        self.W, self.b = [], []
        at = 0
        for n_prev, n in zip(self.sizes[:-1], self.sizes[1:]):
            self.W.append(flat[at : at + n * n_prev].reshape(n, n_prev))
            at += n * n_prev
            self.b.append(flat[at : at + n].reshape(n, 1))
            at += n

    @classmethod
    def zeros(cls, sizes, dtype=np.float64) -> Params:
        return cls(sizes, np.zeros(param_count(sizes), dtype=dtype))

    @classmethod
    def from_weights(cls, weights, biases=None, dtype=np.float64) -> Params:
        sizes = [weights[0].shape[1]] + [W.shape[0] for W in weights]
        params = cls.zeros(sizes, dtype)
        for l, W in enumerate(weights):
            params.W[l][...] = W
            if biases is not None:
                params.b[l][...] = np.reshape(biases[l], (-1, 1))
        return params

    def copy(self) -> Params:
        return Params(self.sizes, self.flat.copy())

    def tensors(self) -> dict[str, np.ndarray]:
        """Named views ``W1, b1, W2, b2, ...`` (1-based, as in the course)."""
        named = {}
        for l, (W, b) in enumerate(zip(self.W, self.b), start=1):
            named[f"W{l}"], named[f"b{l}"] = W, b
        return named


@dataclass
class Cache:
    """What the forward pass keeps for the backward pass."""

    Z: list = field(default_factory=list)
    A: list = field(default_factory=list)  # A[0] is X; A[l] feeds layer l+1 (after dropout)
    G: list = field(default_factory=list)  # g(Z) before dropout, for the derivative
    masks: list = field(default_factory=list)  # inverted-dropout masks, already / keep_prob


class Network:
    """The math of one architecture. Holds no parameters and no state."""

    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.activations: list[Activation] = [get_activation(a) for _, a in spec.layers]
        self.loss: Loss = get_loss(spec.loss)

    def forward(self, params: Params, X, keep_prob: float = 1.0, mask_key=None, columns=None) -> Cache:
        """Run ``X`` (shape ``(n_x, m)``) through every layer; dropout on hidden layers.

        Dropout masks come from ``dropout_mask(mask_key, layer, ...)``, so any worker can
        draw the same mask; ``columns`` (a slice) takes a data shard's part of the
        whole batch's mask.
        """
        cache = Cache(A=[X])
        A = X
        last = len(self.activations) - 1
        for l, (W, b, g) in enumerate(zip(params.W, params.b, self.activations)):
            Z = W @ A
            Z += b
            A = g.forward(Z)
            cache.Z.append(Z)
            cache.G.append(A)
            if keep_prob < 1.0 and l < last:
                mask = dropout_mask(mask_key, l, A.shape, keep_prob, A.dtype, columns)
                cache.masks.append(mask)
                A = A * mask
            cache.A.append(A)
        return cache

    def output(self, params: Params, X) -> np.ndarray:
        """A[L]: the network's prediction for ``X``."""
        return self.forward(params, X).A[-1]

    def cost(self, params: Params, cache: Cache, Y, l2: float = 0.0) -> float:
        """Mean loss over the batch, plus lambda/(2m) sum ||W||^2 when ``l2`` > 0."""
        name = self.activations[-1].name
        J = output_cost(self.loss, name, cache.Z[-1], cache.A[-1], Y)
        if l2:
            J += l2 / (2 * Y.shape[1]) * sum(float(np.vdot(W, W)) for W in params.W)
        return J

    def backward(self, params: Params, cache: Cache, Y, grads: Params, l2: float = 0.0) -> None:
        """Write d(cost)/d(every parameter) into ``grads``."""
        m = Y.shape[1]
        dZ = output_delta(self.loss, self.activations[-1], cache.Z[-1], cache.A[-1], Y)
        for l in reversed(range(len(params.W))):
            np.matmul(dZ, cache.A[l].T, out=grads.W[l])
            np.sum(dZ, axis=1, keepdims=True, out=grads.b[l])
            if l2:
                grads.W[l] += (l2 / m) * params.W[l]
            if l == 0:
                break
            dA = params.W[l].T @ dZ
            if cache.masks:
                dA *= cache.masks[l - 1]
            dZ = self.activations[l - 1].backward(dA, cache.Z[l - 1], cache.G[l - 1])

    def gradients(self, params: Params, X, Y, l2: float = 0.0, keep_prob=1.0, mask_key=None):
        """Cost and gradients of one batch: ``(cost, grads, A_L)``."""
        cache = self.forward(params, X, keep_prob, mask_key)
        grads = Params.zeros(params.sizes, params.flat.dtype)
        self.backward(params, cache, Y, grads, l2)
        return self.cost(params, cache, Y, l2), grads, cache.A[-1]


def dropout_mask(key, layer: int, shape, keep_prob: float, dtype, columns=None) -> np.ndarray:
    """Inverted-dropout mask of hidden ``layer`` (0-based) for the batch named by ``key``.

    ``key`` is ``(seed, epoch, batch, m)``: the mask of the whole batch (``m`` columns) is
    drawn from a generator seeded by the key and the layer alone, so every worker (a
    neuron's rows, a data shard's ``columns``) draws the same numbers without talking.
    """
    seed, epoch, batch, m = key
    rng = np.random.default_rng([seed, DROPOUT_STREAM, epoch, batch, layer])
    keep = rng.random((shape[0], m)) < keep_prob
    if columns is not None:
        keep = keep[:, columns]
    return keep.astype(dtype) / np.dtype(dtype).type(keep_prob)


DROPOUT_STREAM = 2


def predictions(A_L: np.ndarray) -> np.ndarray:
    """Class labels from the output layer: ``a > 0.5`` for one unit, else argmax."""
    if A_L.shape[0] == 1:
        return (A_L[0] > 0.5).astype(np.int64)
    return A_L.argmax(axis=0)


def targets(labels: np.ndarray, n_out: int, dtype=np.float64) -> np.ndarray:
    """Y of shape ``(n_out, m)``: the labels as a row for one unit, else one-hot."""
    labels = np.asarray(labels)
    if n_out == 1:
        return labels.reshape(1, -1).astype(dtype)
    Y = np.zeros((n_out, labels.size), dtype=dtype)
    Y[labels, np.arange(labels.size)] = 1
    return Y
