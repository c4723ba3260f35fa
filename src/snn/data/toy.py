"""Small 2-D problems generated in code: they train in seconds and need no download."""

from __future__ import annotations

import numpy as np

from .dataset import Dataset, Preprocessing


def spiral(n_per_class=100, classes=3, seed=0, noise=0.2) -> Dataset:
    """The classic interleaved spirals (cs231n), ``classes`` arms of ``n_per_class`` points."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.standard_normal(n_per_class) * noise
        x.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y.append(np.full(n_per_class, k))
    return _split("spiral", np.concatenate(x), np.concatenate(y), classes, rng)


def xor(n=400, seed=0) -> Dataset:
    """Points in [-1, 1]^2 labelled 1 where x1 * x2 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return _split("xor", x, (x[:, 0] * x[:, 1] > 0).astype(np.int64), 2, rng)


def _split(name, x, y, classes, rng) -> Dataset:
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    cut = len(y) * 4 // 5
    return Dataset(
        name, x[:cut], y[:cut], tuple(str(i) for i in range(classes)), Preprocessing("table", (2,)),
        x_test=x[cut:], y_test=y[cut:],
    )
