"""Epochs whose mini-batches train in parallel from the same parameters, then merge.

* ``average``: every batch takes one optimizer step from the epoch's parameters; the
  epoch ends with the example-weighted average of the resulting parameters (and
  optimizer states, so momentum and Adam's moments carry on).
* ``tree``: the same average, merged through a tree of the given fan-in, as workers
  would merge pairwise (Feng et al. 2018's hierarchical merge).
* ``best``: the epoch keeps the batch model with the lowest validation cost.

The epoch's cost is every batch's cost before its step, weighted by batch size: the
cost over all the examples, at the epoch's starting parameters.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .network import Network, Params, labels_of, predictions
from .training import SHUFFLE, EpochResult, Plan, batches, epoch_rng

STRATEGIES = ("sync", "average", "best", "tree")


def local_step(net: Network, params: Params, optimizer, state: dict, X, Y, l2: float, keep: float, lr: float,
               mask_key):
    """One step of a batch from ``params``/``state``, on copies: ``(flat, state, cost, A_L)``."""
    mine = Params(params.sizes, params.flat.copy())
    mine_state = {k: v.copy() for k, v in state.items()}
    cache = net.forward(mine, X, keep, mask_key)
    cost = net.cost(mine, cache, Y, l2)
    grads = Params.zeros(mine.sizes, mine.flat.dtype)
    net.backward(mine, cache, Y, grads, l2)
    optimizer.step(mine.flat, grads.flat, mine_state, lr)
    return mine.flat, mine_state, cost, cache.A[-1]


def weighted_average(models: list[tuple[np.ndarray, dict]], weights: list[float]) -> tuple[np.ndarray, dict]:
    """sum_b w_b theta_b / sum_b w_b, for the parameters and every optimizer state array."""
    total = float(sum(weights))
    flat = models[0][0] * weights[0]
    for (theta, _), w in zip(models[1:], weights[1:]):
        flat += theta * w
    flat /= total
    state = {}
    for name, first in models[0][1].items():
        if name == "t":
            state[name] = first.copy()  # every batch took the same number of steps
            continue
        acc = first * weights[0]
        for (_, s), w in zip(models[1:], weights[1:]):
            acc += s[name] * w
        state[name] = acc / total
    return flat, state


def tree_merge(models, weights, fan_in: int):
    """Average groups of ``fan_in`` neighbours, level by level, carrying their weights."""
    while len(models) > 1:
        groups = range(0, len(models), fan_in)
        models, weights = (
            [weighted_average(models[g : g + fan_in], weights[g : g + fan_in]) for g in groups],
            [float(sum(weights[g : g + fan_in])) for g in groups],
        )
    return models[0]


def train_epochs_parallel(net: Network, params: Params, optimizer, state: dict, X, Y, plan: Plan, strategy: str,
                          fan_in: int = 2, X_val=None, Y_val=None, start_epoch: int = 0) -> Iterator[EpochResult]:
    """The in-process reference of the parallel strategies; updates ``params``/``state`` in place."""
    if strategy == "best" and X_val is None:
        raise ValueError("strategy 'best' picks by validation cost: set data.validation_split > 0")
    labels = labels_of(Y)
    m = X.shape[1]
    for epoch in range(start_epoch, plan.epochs):
        lr = plan.learning_rate_at(epoch)
        shuffle = epoch_rng(plan.seed, SHUFFLE, epoch) if plan.shuffle else None
        models, weights, total, correct = [], [], 0.0, 0
        for b, (Xb, Yb, lb) in enumerate(batches(X, Y, labels, plan.batch_size, shuffle)):
            flat, st, cost, A = local_step(net, params, optimizer, state, Xb, Yb, plan.l2, 1.0 - plan.dropout, lr,
                                           (plan.seed, epoch, b, Xb.shape[1]))
            models.append((flat, st))
            weights.append(float(Xb.shape[1]))
            total += cost * Xb.shape[1]
            correct += int((predictions(A) == lb).sum())
        flat, st = merge(strategy, models, weights, fan_in, lambda flats: pick_best(net, params.sizes, flats, X_val, Y_val))
        params.flat[...] = flat
        for name in state:
            state[name][...] = st[name]
        yield EpochResult(epoch + 1, total / m, correct / m, lr)


def merge(strategy: str, models, weights, fan_in: int, best_of):
    """The epoch's model from its batch models; ``best_of(flats)`` picks for ``best``."""
    if strategy == "best":
        return models[best_of([f for f, _ in models])]
    if strategy == "tree":
        return tree_merge(models, weights, fan_in)
    return weighted_average(models, weights)


def validation_cost(net: Network, sizes, flat: np.ndarray, X_val, Y_val) -> float:
    params = Params(sizes, flat)
    return net.cost(params, net.forward(params, X_val), Y_val)


def pick_best(net: Network, sizes, flats: list[np.ndarray], X_val, Y_val) -> int:
    """Index of the model with the lowest validation cost (the first of equals)."""
    costs = [validation_cost(net, sizes, f, X_val, Y_val) for f in flats]
    return int(np.argmin(costs))
