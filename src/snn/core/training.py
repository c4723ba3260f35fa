"""The training loop, as a generator of per-epoch results. No I/O, no clocks.

The cost recorded for an epoch is the cost of each batch's forward pass before
that batch's update, averaged over the batches weighted by their sizes; with one
full batch that is exactly the classic notebooks' "cost after iteration i".

Shuffles and dropout masks come from generators seeded by ``(seed, stream, epoch)``,
so any epoch can be replayed or resumed without saving a random state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .network import Network, Params, labels_of, predictions
from .schedules import SCHEDULES

SHUFFLE = 1
MAX_EPOCHS = 10**7  # no real run needs more; it keeps a typo from asking for an endless one


@dataclass(frozen=True)
class Plan:
    """How to train: the loop's hyperparameters."""

    epochs: int
    learning_rate: float
    batch_size: int | None = None  # None: full batch
    shuffle: bool = True
    schedule: str = "constant"
    decay_rate: float = 0.0
    decay_interval: int = 1
    l2: float = 0.0
    dropout: float = 0.0  # probability of dropping a hidden unit
    seed: int = 0

    def learning_rate_at(self, epoch: int) -> float:
        return SCHEDULES[self.schedule](self.learning_rate, epoch, self.decay_rate, self.decay_interval)


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based: epoch 1 is the first pass over the data
    cost: float
    accuracy: float
    learning_rate: float


def batches(X, Y, labels, size, rng):
    """Yield ``(X_b, Y_b, labels_b)``; the last batch may be smaller."""
    m = X.shape[1]
    if size is None or size >= m:
        yield X, Y, labels
        return
    # Examples as rows, so a shuffled batch is one gather of contiguous rows;
    # its transpose is the (n_x, b) view the math wants, without a copy.
    rows = X.T if X.T.flags.c_contiguous else np.ascontiguousarray(X.T)
    order = rng.permutation(m) if rng is not None else np.arange(m)
    for start in range(0, m, size):
        idx = order[start : start + size]
        yield rows[idx].T, Y[:, idx], labels[idx]


def epoch_rng(seed: int, stream: int, epoch: int):
    return np.random.default_rng([seed, stream, epoch])


def whole_batch(net: Network, params: Params, X, Y, grads: Params, l2: float, keep: float, key):
    """The batch's cost (with L2) and output ``A_L``; its gradients in ``grads``. In one piece."""
    cache = net.forward(params, X, keep, key)
    net.backward(params, cache, Y, grads, l2)
    return net.cost(params, cache, Y, l2), cache.A[-1]


def train_epochs(
    net: Network, params: Params, optimizer, state, X, Y, plan: Plan, start_epoch: int = 0,
    gradients=whole_batch,
) -> Iterator[EpochResult]:
    """Train ``params`` in place, yielding after every epoch.

    ``gradients`` computes each batch's cost, output and gradients: ``whole_batch``, or
    anything with its signature that gives the same numbers (the batch's columns on
    threads, say).
    """
    labels = labels_of(Y)
    grads = Params.zeros(params.sizes, params.flat.dtype)
    keep = 1.0 - plan.dropout
    m = X.shape[1]
    for epoch in range(start_epoch, plan.epochs):
        lr = plan.learning_rate_at(epoch)
        shuffle = epoch_rng(plan.seed, SHUFFLE, epoch) if plan.shuffle else None
        total, correct = 0.0, 0
        for b, (Xb, Yb, lb) in enumerate(batches(X, Y, labels, plan.batch_size, shuffle)):
            cost, A_L = gradients(net, params, Xb, Yb, grads, plan.l2, keep, (plan.seed, epoch, b, Xb.shape[1]))
            total += cost * Yb.shape[1]
            correct += int((predictions(A_L) == lb).sum())
            optimizer.step(params.flat, grads.flat, state, lr)
        yield EpochResult(epoch + 1, total / m, correct / m, lr)
