"""The in-memory dataset every loader returns, and the one preprocessing rule."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ..errors import ConfigError, DataError


# A feature whose std is below this share of its mean's size, or below MIN_STD, is constant up to
# rounding: it is centred and left at unit scale, as scikit-learn's StandardScaler leaves it, never
# divided by ~0. MIN_STD is well inside float32's normal range, so a float32 model divides by it too.
CONSTANT_SPREAD, MIN_STD = 1e-12, 1e-30


@dataclass(frozen=True)
class Preprocessing:
    """How raw examples become network inputs; saved with every model.

    Images are flattened the classic way, ``x.reshape(m, -1).T / 255``. A standardised table
    also has a ``mean`` and ``std`` per feature (of the scaled values, fitted on the training
    split only): its inputs are ``(x / scale - mean) / std``.
    """

    kind: str = "table"  # "image" or "table"
    shape: tuple[int, ...] = ()  # one raw example's shape, e.g. (64, 64, 3)
    scale: float = 1.0  # divide raw values by this (255 for 8-bit images)
    channels_first: bool = False  # images as (channels, height, width) features, as convolutions read them
    mean: tuple[float, ...] | None = None  # per feature; None: not standardised
    std: tuple[float, ...] | None = None  # per feature, > 0
    # A table's column names, from its header: ``snn predict`` and the service pick a row's
    # features by these names, so a CSV to predict may order its columns as it likes.
    features: tuple[str, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of an image example."""
        return (1, *self.shape) if len(self.shape) == 2 else (self.shape[2], self.shape[0], self.shape[1])

    def columns(self, x, dtype=np.float64) -> np.ndarray:
        """Raw examples of shape ``(m, *shape)`` -> inputs of shape ``(n_x, m)``."""
        x = np.asarray(x)
        if self.channels_first and x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)  # (m, H, W, C) -> (m, C, H, W)
        flat = x.reshape(x.shape[0], -1).T
        if self.mean is None:  # the inputs as they always were, to the bit
            return np.divide(flat, self.scale, dtype=dtype)
        # In float64, then cast: a feature near a large mean (a year, a timestamp) keeps its digits in float32 too.
        scaled = np.divide(flat, self.scale, dtype=np.float64)
        scaled -= np.asarray(self.mean)[:, None]
        scaled /= np.asarray(self.std)[:, None]
        return scaled.astype(dtype, copy=False)

    def standardized(self, x, where: str = "x") -> Preprocessing:
        """This preprocessing with each feature's mean and std fitted on the raw examples ``x``."""
        X = replace(self, mean=None, std=None).columns(x)
        with np.errstate(over="ignore", invalid="ignore"):  # values past 1e154 square to inf: refused below
            mean, std = X.mean(axis=1), X.std(axis=1)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            j = int(np.argmin(np.isfinite(mean) & np.isfinite(std)))
            raise DataError(f"{where}: feature {j + 1} holds values too large to standardise (its spread overflows); "
                            "allowed: values below about 1e150; help: rescale it, or set data.standardize: false")
        std = np.where(std > np.maximum(CONSTANT_SPREAD * np.abs(mean), MIN_STD), std, 1.0)
        return replace(self, mean=tuple(mean.tolist()), std=tuple(std.tolist()))

    def to_json(self) -> dict:
        out = {"kind": self.kind, "shape": list(self.shape), "scale": self.scale}
        if self.channels_first:
            out["channels_first"] = True
        if self.mean is not None:  # written only when standardised, so other files are what they always were
            out.update(mean=list(self.mean), std=list(self.std))
        if self.features is not None:
            out["features"] = list(self.features)
        return out

    @classmethod
    def from_json(cls, d: dict) -> Preprocessing:
        mean, std, features = d.get("mean"), d.get("std"), d.get("features")
        return cls(d["kind"], tuple(d["shape"]), float(d["scale"]), bool(d.get("channels_first", False)),
                   None if mean is None else tuple(map(float, mean)), None if std is None else tuple(map(float, std)),
                   None if features is None else tuple(map(str, features)))


@dataclass(frozen=True)
class Dataset:
    """Raw examples (first axis = example) with integer labels.

    ``name`` is what ``load_dataset`` takes to load it again (``mnist``, ``csv:/abs/path.csv``):
    a model's summary keeps it, and ``snn evaluate`` and ``snn report`` reload from it.
    A dataset built in memory (arrays handed to ``snn.train(config, dataset=...)``) has a
    name that only describes it.

    With ``task="regression"`` the targets are real values, ``y`` of shape ``(examples, k)``,
    and ``classes`` names the ``k`` target columns.

    ``centred``: the features are already centred at unit scale (the generated toys), so a
    table is standardised by default only when this is False (see ``data.standardize``).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"
    centred: bool = False

    @property
    def n_input(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    def with_validation(self, fraction: float, seed: int) -> Dataset:
        """Carve a seeded validation split off the training data (never the test set)."""
        if not fraction:
            return self
        m = len(self.y_train)
        n_val = round(m * fraction) if 0 < fraction < 1 else 0
        if not 0 < n_val < m:
            raise ConfigError(f"data.validation_split {fraction} {_split_problem(fraction, n_val, m)}; allowed: "
                              + (f"a fraction from 1/{m} ({1 / m:.4g}) to {m - 1}/{m} ({(m - 1) / m:.4g}), "
                                 if m > 1 else "") + "or 0 for no validation split")
        order = np.random.default_rng([seed, 3]).permutation(m)
        train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
        return replace(
            self,
            x_train=self.x_train[train],
            y_train=self.y_train[train],
            x_val=self.x_train[val],
            y_val=self.y_train[val],
        )

    def subset(self, n_train: int | None) -> Dataset:
        """The first ``n_train`` training examples (for quick runs and tests)."""
        if n_train is None or n_train >= len(self.y_train):
            return self
        if n_train < 1:
            raise ConfigError(f"data.subset is {n_train}; allowed: a whole number of training examples >= 1")
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train])


def _split_problem(fraction: float, n_val: int, m: int) -> str:
    if not 0 < fraction < 1:
        return "is not a fraction between 0 and 1"
    if m < 2:
        return f"cannot split {m} training example"
    side = "validation" if n_val <= 0 else "training"
    return f"holds out {max(n_val, 0)} of {m} training examples, which leaves none for {side}"
