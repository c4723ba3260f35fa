"""In-process data parallelism: a batch's columns side by side on this machine's cores.

A convolution's arithmetic is half matrix products (which BLAS already spreads over
the cores) and half elementwise passes over large feature maps (which NumPy runs on
one core). Cutting each batch into one column range per core and running the ranges
on threads, each with a one-thread BLAS, keeps every core busy in both halves; NumPy
releases the GIL inside its loops. The parts are ``Network.part``, the same math as
a ``data:K`` shard, summed in column order: the batch's gradient up to rounding.

Only networks whose batches are large enough gain: a small dense network's batch is
over before the threads have started. ``column_threads`` decides.
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.network import Network, Params
from ..core.training import whole_batch
from .engines.local import single_blas
from .plan import shard_ranges

# Activations a batch computes (sum over layers of the output size, times the batch)
# past which a second core pays for its thread hops: MNIST 256-128 at 128 is ~50,000
# and gains nothing; the MNIST CNN at 128 is ~4.5 million and gains about 1.6x.
MIN_ACTIVATIONS = 1_000_000


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def column_threads(net: Network, batch: int) -> int:
    """How many threads a batch of ``batch`` columns of ``net`` is worth: 1 (in one piece) or the cores."""
    activations = batch * sum(math.prod(layer.out_shape) for layer in net.layers)
    return cores() if cores() > 1 and activations >= MIN_ACTIVATIONS else 1


class ColumnThreads:
    """``train_epochs``' ``gradients``: a batch's column ranges on ``n`` threads, summed in order."""

    def __init__(self, n: int):
        self.n = n
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="snn-columns")
        self._parts: list[Params] = []

    def __call__(self, net: Network, params: Params, X, Y, grads: Params, l2: float, keep: float, key):
        m = X.shape[1]
        ranges = shard_ranges(m, self.n)
        if len(ranges) == 1:
            return whole_batch(net, params, X, Y, grads, l2, keep, key)
        if len(self._parts) != len(ranges) or self._parts[0].flat.dtype != params.flat.dtype:
            self._parts = [Params.zeros(params.sizes, params.flat.dtype) for _ in ranges]
        done = [self._pool.submit(net.part, params, X, Y, keep, key, r, g) for r, g in zip(ranges, self._parts)]
        costs, outputs = zip(*(f.result() for f in done))
        np.copyto(grads.flat, self._parts[0].flat)
        for part in self._parts[1:]:
            grads.flat += part.flat
        net.add_l2(params, grads, l2, m)
        return sum(costs) + net.l2_cost(params, l2, m), np.concatenate(outputs, axis=1)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@contextlib.contextmanager
def batch_gradients(net: Network, batch: int):
    """The ``gradients`` function for in-process training: in one piece, or on threads with one-thread BLAS."""
    n = column_threads(net, batch)
    if n == 1:
        yield whole_batch
        return
    threads = ColumnThreads(n)
    try:
        with single_blas():
            yield threads
    finally:
        threads.close()


@contextlib.contextmanager
def chunk_map(net: Network, m: int):
    """A ``map`` for ``Network.evaluate`` over ``m`` examples: its chunks side by side on the cores
    (each with a one-thread BLAS) when there are several, else the builtin."""
    n = min(cores(), len(net.chunks(m)))
    if n == 1:
        yield map
        return
    with ThreadPoolExecutor(n, thread_name_prefix="snn-chunks") as pool, single_blas():
        yield pool.map
