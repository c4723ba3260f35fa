"""Small problems that need no download: 2-D ones generated in code, and iris from scikit-learn's copy."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
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
    return _split("spiral", np.concatenate(x), np.concatenate(y), _numbered(classes), rng, centred=True)


def xor(n=400, seed=0) -> Dataset:
    """Points in [-1, 1]^2 labelled 1 where x1 * x2 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return _split("xor", x, (x[:, 0] * x[:, 1] > 0).astype(np.int64), _numbered(2), rng, centred=True)


def iris(seed=0) -> Dataset:
    """Fisher's iris: 150 flowers, 4 measurements in cm, 3 species; 120 to train, 30 to test.

    Read from the copy scikit-learn installs (its ``iris.csv`` starts with a line of counts and
    names, not a header, so it is read by scikit-learn's own loader).
    """
    try:
        from sklearn.datasets import load_iris
    except ImportError:
        raise DataError("dataset 'iris' is read from scikit-learn, which is not installed; "
                        "help: pip install 'serverless-nn[sklearn]'") from None
    data = load_iris()
    names = tuple(str(n) for n in data.target_names)
    return _split("iris", data.data, data.target.astype(np.int64), names, np.random.default_rng(seed),
                  features=tuple(data.feature_names))  # "sepal length (cm)", ...


def _numbered(classes: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(classes))


def _split(name, x, y, classes: tuple[str, ...], rng, centred: bool = False,
           features: tuple[str, ...] | None = None) -> Dataset:
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    cut = len(y) * 4 // 5
    return Dataset(
        name, x[:cut], y[:cut], classes, Preprocessing("table", (x.shape[1],), features=features),
        x_test=x[cut:], y_test=y[cut:], centred=centred,
    )
