"""A network of layers: parameters, forward pass, cost and backward pass.

Per layer ``l`` (``A0 = X``), with each layer kind's own ``forward`` (see ``layers``)::

    Z[l] = f[l](p[l], A[l-1])            A[l] = g[l](Z[l])
    dp[l] = from dZ[l] and A[l-1]        dA[l-1] = the layer's input gradient of dZ[l]
    dZ[l-1] = dA[l-1] * g'[l-1](Z[l-1])

For a dense layer ``f`` is ``W @ A + b``, ``dW = dZ A^T``, ``db = sum_columns(dZ)``
and ``dA = W^T dZ``.

``dZ`` carries the ``1/m`` of the mean cost from the output layer down (see
``losses``), and the gradient with respect to the input ``X`` is never formed:
nobody needs it and it is as costly as the first layer's weight gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .activations import Activation
from .layers import Dense, Layer, LayerSpec, layer_from_json
from .losses import Loss, get_loss, output_cost, output_delta


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture: the input shape, the layer specs in order, and the loss.

    For brevity an input shape may be given as a vector's size, and a dense layer as a
    ``(units, activation)`` pair: ``NetworkSpec(2, ((8, "relu"), (3, "softmax")), "cce")``.
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    loss: str

    def __post_init__(self):
        shape = self.input_shape
        shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "layers", tuple(l if hasattr(l, "build") else Dense(*l) for l in self.layers))

    @cached_property
    def built(self) -> tuple[Layer, ...]:
        """Each layer's math, bound to the shape of its input."""
        built, shape = [], self.input_shape
        for spec in self.layers:
            layer = spec.build(shape)
            built.append(layer)
            shape = layer.out_shape
        return tuple(built)

    @property
    def n_input(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.built[-1].out_shape)

    @property
    def sizes(self) -> list[int]:
        """Values per example at the input and after every layer: ``[n_x, n_1, ..., n_L]`` for dense layers."""
        return [self.n_input] + [math.prod(layer.out_shape) for layer in self.built]

    @cached_property
    def layout(self) -> Layout:
        return Layout(tuple(tuple(layer.param_shapes.items()) for layer in self.built))

    @property
    def n_params(self) -> int:
        return self.layout.size

    def to_json(self) -> dict:
        """Plain JSON; made once per spec (every event of a run carries it): callers must not change it."""
        return self._json

    @cached_property
    def _json(self) -> dict:
        return {"input_shape": list(self.input_shape), "layers": [l.to_json() for l in self.layers], "loss": self.loss}

    @classmethod
    def from_json(cls, raw: dict) -> NetworkSpec:
        return cls(tuple(raw["input_shape"]), tuple(layer_from_json(l) for l in raw["layers"]), raw["loss"])


@dataclass(frozen=True)
class Layout:
    """Where each layer's tensors sit in the flat buffer: per layer, ``(name, shape)`` in order.

    A layer's tensors are contiguous and each is stored row-major, so the rows
    ``r0:r1`` of a layer's units (the first axis of every tensor) are one slice per tensor.
    """

    layers: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...]

    @cached_property
    def offsets(self) -> list[int]:
        """Start of each layer's tensors, and the total at the end."""
        at = [0]
        for tensors in self.layers:
            at.append(at[-1] + sum(math.prod(shape) for _, shape in tensors))
        return at

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def views(self, flat: np.ndarray, layer: int, rows: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """The tensors of ``layer`` as views of ``flat``: the whole buffer, or one unit's own slice.

        With ``rows``, ``flat`` is a unit's slice (as ``unit_indices`` cuts it) holding
        rows ``r0:r1`` of every tensor of the layer.
        """
        at = self.offsets[layer] if rows is None else 0
        out = {}
        for name, shape in self.layers[layer]:
            if rows is not None:
                shape = (rows[1] - rows[0], *shape[1:])
            n = math.prod(shape)
            out[name] = flat[at : at + n].reshape(shape)
            at += n
        return out

    def unit_indices(self, layer: int, r0: int, r1: int) -> np.ndarray:
        """Where rows ``r0:r1`` of every tensor of ``layer`` sit in the flat buffer, in order."""
        at, parts = self.offsets[layer], []
        for _, shape in self.layers[layer]:
            row = math.prod(shape[1:])
            parts.append(np.arange(at + r0 * row, at + r1 * row))
            at += math.prod(shape)
        return np.concatenate(parts)

    def weight_mask(self, weights: list[str | None]) -> np.ndarray:
        """True where the flat buffer holds a weight (L2 applies), False at biases."""
        mask = np.zeros(self.size, dtype=bool)
        for layer, name in enumerate(weights):
            if name is not None:
                self.views(mask, layer)[name].fill(True)
        return mask


def layout_of(layout) -> Layout:
    """A ``Layout`` from a ``NetworkSpec``, a ``Layout``, or dense ``sizes`` ``[n_x, n_1, ...]``."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, NetworkSpec):
        return layout.layout
    sizes = list(layout)
    return Layout(tuple(((("W", (n, p)), ("b", (n, 1)))) for p, n in zip(sizes[:-1], sizes[1:])))


class Params:
    """All weights and biases of a network in one flat buffer.

    ``layers[l]`` holds layer ``l``'s tensors by name, as views into ``flat``, so an
    optimizer updates every tensor with a few whole-buffer operations and a gradient
    can be summed, sent or stored as one array. ``W[l]`` (shape ``(n_l, n_prev)`` for a
    dense layer) and ``b[l]`` are the same views by layer (``None`` for a layer without
    parameters). Lists are 0-based: ``W[0]`` is the course's ``W1``.
    """

    def __init__(self, layout, flat: np.ndarray):
        self.sizes = layout  # as given (dense sizes, a spec or a Layout), so Params(p.sizes, ...) is alike
        self.layout = layout_of(layout)
        self.flat = flat
        need = self.layout.size
        if flat.shape != (need,):
            raise ValueError(f"flat buffer has shape {flat.shape}, layers {_described(layout)} need {need} values")
        self.layers = [self.layout.views(flat, l) for l in range(len(self.layout.layers))]
        self.W = [t.get("W") for t in self.layers]
        self.b = [t.get("b") for t in self.layers]

    @classmethod
    def zeros(cls, layout, dtype=np.float64) -> Params:
        return cls(layout, np.zeros(layout_of(layout).size, dtype=dtype))

    @classmethod
    def from_weights(cls, weights, biases=None, dtype=np.float64) -> Params:
        """Dense layers from their ``W`` matrices (and ``b`` vectors)."""
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
        """Named views ``W1, b1, W2, b2, ...`` (1-based by layer, as in the course)."""
        return {f"{name}{l}": view for l, tensors in enumerate(self.layers, start=1) for name, view in tensors.items()}


def _described(layout) -> str:
    return str(list(layout)) if isinstance(layout, list | tuple) else type(layout).__name__


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
        self.layers: tuple[Layer, ...] = spec.built
        self.activations: list[Activation] = [layer.activation for layer in self.layers]
        self.loss: Loss = get_loss(spec.loss)

    def forward(self, params: Params, X, keep_prob: float = 1.0, mask_key=None, columns=None) -> Cache:
        """Run ``X`` (shape ``(n_x, m)``) through every layer; dropout on hidden layers.

        Dropout masks come from ``dropout_mask(mask_key, layer, ...)``, so any worker can
        draw the same mask; ``columns`` (a slice) takes a data shard's part of the
        whole batch's mask.
        """
        cache = Cache(A=[X])
        A = X
        last = len(self.layers) - 1
        for l, (layer, p) in enumerate(zip(self.layers, params.layers)):
            Z = layer.forward(p, A)
            A = layer.activation.forward(Z)
            cache.Z.append(Z)
            cache.G.append(A)
            if keep_prob < 1.0 and l < last:  # a mask (or None) per hidden layer
                mask = None
                if layer.weights:  # layers with neurons; not pooling or flatten
                    mask = dropout_mask(mask_key, l, layer.out_shape, keep_prob, A.dtype, columns)
                    A = A * mask
                cache.masks.append(mask)
            cache.A.append(A)
        return cache

    def chunks(self, m: int) -> list[tuple[int, int]]:
        """Column ranges of ``m`` examples whose forward pass holds at most ``INFERENCE_NUMBERS``
        activations: a test set of 10,000 images goes through a conv net in pieces, not at once
        (small networks take any data set in one piece, so their numbers do not change)."""
        per_example = sum(math.prod(layer.out_shape) for layer in self.layers)
        size = max(1, INFERENCE_NUMBERS // per_example)
        return [(c, min(c + size, m)) for c in range(0, m, size)]

    def output(self, params: Params, X) -> np.ndarray:
        """A[L]: the network's prediction for ``X``, in bounded chunks of columns."""
        return np.concatenate([self.forward(params, X[:, a:b]).A[-1] for a, b in self.chunks(X.shape[1])], axis=1)

    def evaluate(self, params: Params, X, Y, l2: float = 0.0, map=map) -> tuple[float, np.ndarray]:
        """The cost of ``X`` (with L2) and its output ``A[L]``, in bounded chunks of columns.

        ``map`` runs the chunks (a thread pool's, say); they are summed in order whatever runs them.
        """
        m = X.shape[1]

        def chunk(columns):
            a, b = columns
            cache = self.forward(params, X[:, a:b])
            part = self.cost(params, cache, Y[:, a:b])
            return part if (a, b) == (0, m) else part * (b - a) / m, cache.A[-1]

        costs, outputs = zip(*map(chunk, self.chunks(m)))
        return sum(costs) + self.l2_cost(params, l2, m), np.concatenate(outputs, axis=1)

    def cost(self, params: Params, cache: Cache, Y, l2: float = 0.0) -> float:
        """Mean loss over the batch, plus lambda/(2m) sum ||W||^2 when ``l2`` > 0."""
        name = self.activations[-1].name
        return output_cost(self.loss, name, cache.Z[-1], cache.A[-1], Y) + self.l2_cost(params, l2, Y.shape[1])

    def l2_cost(self, params: Params, l2: float, m: int) -> float:
        """lambda/(2m) sum ||W||^2 (0 without L2)."""
        return l2 / (2 * m) * sum(float(np.vdot(W, W)) for W in self.weights(params)) if l2 else 0.0

    def weights(self, params: Params) -> list[np.ndarray]:
        """The tensors L2 applies to, layer by layer."""
        return [p[layer.weights] for layer, p in zip(self.layers, params.layers) if layer.weights]

    def backward(self, params: Params, cache: Cache, Y, grads: Params, l2: float = 0.0) -> None:
        """Write d(cost)/d(every parameter) into ``grads``."""
        m = Y.shape[1]
        dZ = output_delta(self.loss, self.activations[-1], cache.Z[-1], cache.A[-1], Y)
        for l in reversed(range(len(self.layers))):
            layer, p, g = self.layers[l], params.layers[l], grads.layers[l]
            layer.backward(p, cache.A[l], dZ, g)
            self._add_l2(layer, p, g, l2, m)
            if l == 0:
                break
            dA = layer.input_grad(p, dZ, cache.A[l])
            if cache.masks and cache.masks[l - 1] is not None:
                dA *= cache.masks[l - 1]
            dZ = self.activations[l - 1].backward(dA, cache.Z[l - 1], cache.G[l - 1])

    @staticmethod
    def _add_l2(layer, p, g, l2: float, m: int) -> None:
        if l2 and layer.weights:
            g[layer.weights] += (l2 / m) * p[layer.weights]

    def add_l2(self, params: Params, grads: Params, l2: float, m: int) -> None:
        """The L2 term's gradient, lambda/m W, added to every weight's gradient."""
        for layer, p, g in zip(self.layers, params.layers, grads.layers):
            self._add_l2(layer, p, g, l2, m)

    def part(self, params: Params, X, Y, keep_prob, mask_key, columns: tuple[int, int], grads: Params):
        """Columns ``c0:c1`` of a batch of ``m = X.shape[1]``, alone: its gradients (in ``grads``) and
        its cost, both weighted by its share ``(c1 - c0) / m``, so that the parts of a batch add up to
        the whole batch's (without L2, which the sum gets once); and its output ``A_L``.

        The parts use the whole batch's dropout masks, so their sum is the batch's gradient.
        """
        c0, c1 = columns
        weight = (c1 - c0) / X.shape[1]
        Yp = Y[:, c0:c1]
        cache = self.forward(params, X[:, c0:c1], keep_prob, mask_key, slice(c0, c1))
        self.backward(params, cache, Yp, grads)
        grads.flat *= weight
        return self.cost(params, cache, Yp) * weight, cache.A[-1]

    def gradients(self, params: Params, X, Y, l2: float = 0.0, keep_prob=1.0, mask_key=None):
        """Cost and gradients of one batch: ``(cost, grads, A_L)``."""
        cache = self.forward(params, X, keep_prob, mask_key)
        grads = Params.zeros(params.sizes, params.flat.dtype)
        self.backward(params, cache, Y, grads, l2)
        return self.cost(params, cache, Y, l2), grads, cache.A[-1]


def dropout_mask(key, layer: int, shape, keep_prob: float, dtype, columns=None) -> np.ndarray:
    """Inverted-dropout mask of hidden ``layer`` (0-based) for the batch named by ``key``.

    ``key`` is ``(seed, epoch, batch, m)``: the mask of the whole batch is one stream of a
    generator seeded by the key and the layer alone, example after example, so every
    worker (a neuron's rows, a data shard's or a thread's ``columns``) draws the same
    numbers without talking, and a range of examples skips straight to its own part of
    the stream (``advance``) instead of drawing the whole batch's.
    ``shape`` is the layer's output per example: ``(n,)`` gives ``(n, m)`` columns, and an
    image shape ``(C, H, W)`` gives ``(m, C, H, W)``.
    """
    seed, epoch, batch, m = key
    c0, c1 = (0, m) if columns is None else (columns.start or 0, m if columns.stop is None else columns.stop)
    n = math.prod(shape)
    bits = np.random.PCG64([seed, DROPOUT_STREAM, epoch, batch, layer])
    bits.advance(c0 * n)  # one 64-bit draw per float64 number
    keep = np.random.Generator(bits).random((c1 - c0, n)) < keep_prob
    mask = keep.astype(dtype) / np.dtype(dtype).type(keep_prob)
    return mask.T if len(shape) == 1 else mask.reshape(-1, *shape)


DROPOUT_STREAM = 2
INFERENCE_NUMBERS = 1 << 23  # activations one inference chunk may hold: 32 MB of float32 per copy


def predictions(A_L: np.ndarray) -> np.ndarray:
    """Class labels from the output layer: ``a > 0.5`` for one unit, else argmax."""
    if A_L.shape[0] == 1:
        return (A_L[0] > 0.5).astype(np.int64)
    return A_L.argmax(axis=0)


def labels_of(Y: np.ndarray) -> np.ndarray:
    """The class labels a target matrix holds, the inverse of ``targets``: the row itself for one unit
    (0/1), else the column's one-hot argmax."""
    return Y[0].astype(np.int64) if Y.shape[0] == 1 else Y.argmax(axis=0)


def targets(labels: np.ndarray, n_out: int, dtype=np.float64) -> np.ndarray:
    """Y of shape ``(n_out, m)``: the labels as a row for one unit, else one-hot."""
    labels = np.asarray(labels)
    if n_out == 1:
        return labels.reshape(1, -1).astype(dtype)
    Y = np.zeros((n_out, labels.size), dtype=dtype)
    Y[labels, np.arange(labels.size)] = 1
    return Y
