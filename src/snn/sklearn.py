"""scikit-learn estimators over snn: ``SNNClassifier`` and ``SNNRegressor`` (extra ``sklearn``).

::

    from sklearn.model_selection import GridSearchCV
    from snn.sklearn import SNNClassifier

    GridSearchCV(SNNClassifier(), {"hidden_layer_sizes": [(8,), (32,)]}).fit(X, y)

``fit`` turns the constructor's parameters into a config and trains it with ``snn.train`` on
the arrays, so the runtime options work exactly as for ``snn train``:
``SNNClassifier(granularity="neuron", engine="ray")`` trains neuron by neuron on Ray. The
fitted network is ``model_`` (an ``snn.Model``); ``save`` writes it as an snn model folder
and ``load`` reads one back as a fitted estimator.

A model file says what the network is, never where a later ``fit`` runs: ``save`` leaves
``granularity``, ``engine`` and ``store`` out of it, and ``load`` ignores them in a file,
taking them from its own keywords only (``SNNClassifier.load(path, store="redis://...")``).
Otherwise a file from elsewhere could send the caller's training data to a server it names.
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data  # scikit-learn 1.6 and later
except ImportError as e:
    raise ImportError(f"snn.sklearn needs scikit-learn 1.6 or later ({e}); "
                      "help: pip install 'serverless-nn[sklearn]'") from None

from .config import Config, parse_config
from .data import Dataset, Preprocessing
from .data.tabular import feature_names
from .documents import schema_problem, short
from .errors import ConfigError, DataError, ModelFileError
from .model import MAX_CLASS_NAME, ClassName, Model, load_model
from .run import train

FLOATS = (np.float64, np.float32)  # float32 inputs stay float32; anything else becomes float64
DATASET = "arrays"  # the name a training on in-memory arrays gives its dataset
SEED_RANGE = 2**31 - 1
# Where and how a fit runs: the caller's choice alone, never a model file's (see the module's docstring).
RUNTIME = ("granularity", "engine", "store")


class InputError(DataError, ValueError):
    """Arrays an estimator cannot learn from or answer for: a ValueError, as scikit-learn has it."""


class SNNEstimator(BaseEstimator):
    """What both estimators share: the parameters, the config they make, training and saving.

    ``layers`` (a list of config layer entries, e.g. ``[{"units": 32, "activation": "tanh"}]``)
    replaces ``hidden_layer_sizes`` and ``activation``; either way the output layer comes from
    the targets. ``epochs`` is the most a ``fit`` trains (``patience`` stops it earlier, keeping
    the best model on the ``validation_split`` held out). An integer ``random_state`` is snn's
    ``training.seed``. ``standardize`` z-scores each feature with its mean and std on the rows
    ``fit`` trains on (``data.standardize``); the model keeps them and ``predict`` applies them.
    """

    task: ClassVar[str]

    def __init__(self, hidden_layer_sizes=(16,), activation="relu", layers=None, optimizer="adam",
                 learning_rate=0.01, epochs=200, batch_size=None, l2=0.0, validation_split=0.0, patience=None,
                 random_state=None, granularity="network", engine="local", store=None, dtype="float64",
                 standardize=True):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.layers = layers
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.validation_split = validation_split
        self.patience = patience
        self.random_state = random_state
        self.granularity = granularity
        self.engine = engine
        self.store = store
        self.dtype = dtype
        self.standardize = standardize

    # --- what each estimator says about its targets ---------------------------------------------------------------

    def _learn_targets(self, y, classes=None) -> None:
        """Note what the targets are (a classifier's ``classes_``, a regressor's ``n_outputs_``)."""
        raise NotImplementedError

    def _encoded(self, y) -> np.ndarray:
        """``y`` as the dataset holds it: class indices, or a regression's ``(n, outputs)`` values."""
        raise NotImplementedError

    def _target_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _output_layer(self) -> dict:
        raise NotImplementedError

    # --- training -------------------------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train from new parameters for at most ``epochs`` epochs; returns ``self``."""
        X, y = self._checked(X, y, reset=True)
        self._learn_targets(y)
        self._seed = self._fresh_seed()
        return self._train(X, y, start=None, epochs=self.epochs)

    def _partial_fit(self, X, y, classes=None):
        first = not hasattr(self, "model_")
        X, y = self._checked(X, y, reset=first)
        if first:
            self._learn_targets(y, classes)
            self._seed = self._fresh_seed()
            return self._train(X, y, start=None, epochs=1)
        return self._train(X, y, start=self.model_, epochs=self.n_iter_ + 1)

    def _checked(self, X, y, reset: bool):
        regression = self.task == "regression"
        with _quiet_checks():
            return validate_data(self, X, y, reset=reset, dtype=FLOATS, multi_output=regression,
                                 y_numeric=regression)

    def _fresh_seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)  # so random_state=1 trains as `snn train` with training.seed 1 does
        return int(check_random_state(self.random_state).randint(SEED_RANGE))

    def _train(self, X, y, start: Model | None, epochs: int):
        names = feature_names(self.feature_names_in_) if hasattr(self, "feature_names_in_") else None
        pre = Preprocessing("table", (X.shape[1],), features=names)  # so `snn predict` takes a CSV by column names
        dataset = Dataset(DATASET, X, self._encoded(y), self._target_names(), pre, task=self.task)
        try:
            run = train(self._config(epochs), save=False, dataset=dataset, start=start)
        except DataError as e:  # the arrays this call was given: bad input, which scikit-learn says as ValueError
            raise InputError(str(e)) from None
        self.model_ = run.model
        self.n_iter_ = run.model.summary["epochs"]
        self.history_ = (self.history_ if start is not None else []) + run.history
        return self

    def _config(self, epochs: int) -> Config:
        """The snn config of these parameters; a bad one is a ConfigError (a ValueError) naming the field."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        hidden = self.layers if self.layers is not None else [{"units": n, "activation": self.activation} for n in sizes]
        raw = {
            "data": {"dataset": DATASET, "validation_split": self.validation_split, "standardize": self.standardize},
            "network": {"layers": [*hidden, self._output_layer()], "dtype": self.dtype},
            "training": {"epochs": epochs, "batch_size": self.batch_size, "seed": self._seed, "l2": self.l2,
                         "patience": self.patience,
                         "optimizer": {"name": self.optimizer, "learning_rate": self.learning_rate}},
            "runtime": {"granularity": self.granularity, "engine": self.engine, "store": self.store},
        }
        return parse_config(_plain(raw), f"{type(self).__name__} parameters")

    # --- predicting -----------------------------------------------------------------------------------------------

    def _outputs(self, X) -> np.ndarray:
        """Each row's answer in numbers, ``(m, k)``, as ``snn predict`` and the service compute it (``Model.outputs``:
        a classifier's probability per class, a regression's value per target). One that is not finite is refused."""
        check_is_fitted(self)
        with _quiet_checks():
            X = validate_data(self, X, reset=False, dtype=FLOATS)
        with np.errstate(all="ignore"):  # an overflow shows as inf or NaN, refused just below
            out = self.model_.outputs(X.reshape(len(X), *self.model_.preprocessing.shape))
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise InputError(f"X: row {bad[0]} drives the network to infinity or NaN ({bad.size} of {len(out)} rows "
                             "do); allowed: values in the range the model was trained on")
        return out

    # --- saving ---------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted network as an snn model folder (``model.json``, ``model.safetensors``)."""
        check_is_fitted(self)
        params = {k: v for k, v in self.get_params().items() if k not in ("random_state", *RUNTIME)}
        if self.random_state is None or isinstance(self.random_state, numbers.Integral):
            params["random_state"] = self.random_state  # a RandomState object is not data; the seed it gave is
        saved = SavedEstimator(
            estimator=type(self).__name__, params=_plain(params), seed=self._seed,
            classes=_plain(list(self.classes_)) if hasattr(self, "classes_") else None,
            # Kept only as names a model keeps: printable, distinct (else the file would carry what no terminal shows).
            feature_names=_kept_names(self),
        )
        summary = {**self.model_.summary, "estimator": saved.model_dump(exclude_none=True)}
        return replace(self.model_, summary=summary).save(path)

    @classmethod
    def load(cls, path: str | Path, **runtime):
        """A fitted estimator from an snn model folder (one ``save`` wrote, or any ``snn train`` run's).

        ``runtime`` (``granularity``, ``engine``, ``store``) says where its later fits run; the file
        never does: what it says of them is ignored, and what is not given here is the default.
        """
        return cls.from_model(load_model(path), **runtime)

    @classmethod
    def from_model(cls, model: Model, **runtime):
        """A fitted estimator that predicts with ``model``; ``runtime`` as for ``load``."""
        where = f"{cls.__name__}.from_model"
        foreign = sorted(set(runtime) - set(RUNTIME))
        if foreign:
            raise TypeError(f"{where}() got keyword(s) {', '.join(foreign)}; allowed: {', '.join(RUNTIME)}")
        if model.task != cls.task:
            raise ModelFileError(f"{where}: the model is a {model.task} model; help: load it with the "
                                 f"{'SNNRegressor' if model.task == 'regression' else 'SNNClassifier'}")
        try:
            saved = SavedEstimator.model_validate(model.summary.get("estimator") or SavedEstimator.of(model, cls))
        except ValidationError as e:
            raise ModelFileError(f"{where}: training.estimator: {schema_problem(e)}") from None
        unknown = sorted(set(saved.params) - set(cls._get_param_names()))
        if saved.estimator != cls.__name__ or unknown:
            raise ModelFileError(f"{where}: saved by {saved.estimator} with parameters {sorted(saved.params)}; "
                                 f"allowed: {cls.__name__}'s own ({', '.join(cls._get_param_names())})")
        # The file's hyperparameters, but never where it runs (older files kept that too): the caller's keywords.
        params = {k: v for k, v in saved.params.items() if k not in RUNTIME}
        if isinstance(params.get("hidden_layer_sizes"), list):  # JSON has no tuples
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        estimator = cls(**params, **runtime)
        estimator._adopt(model, saved)
        estimator._check_params(where)
        return estimator

    def _check_params(self, where: str) -> None:
        """The parameters a model file gave, checked now as a fit would check them: a bad one is a ModelFileError."""
        if not (self.random_state is None or type(self.random_state) is int):
            raise ModelFileError(f"{where}: training.estimator.params.random_state is {short(self.random_state)}; "
                                 "allowed: a whole number or null")
        try:
            self._config(self.epochs)
        except ConfigError as e:
            raise ModelFileError(f"{where}: training.estimator.params: {e}") from None

    def _adopt(self, model: Model, saved: SavedEstimator) -> None:
        self.model_, self._seed, self.history_ = model, saved.seed, []  # the epochs' records stay with the run
        self.n_iter_ = model.summary.get("epochs", 0)
        if type(self.n_iter_) is not int or self.n_iter_ < 0:  # a later partial_fit counts on from it
            raise ModelFileError(f"{type(self).__name__}.from_model: training.epochs is {short(self.n_iter_)}; "
                                 "allowed: a count >= 0")
        self.n_features_in_ = model.spec.n_input
        if saved.feature_names is not None:
            if len(saved.feature_names) != self.n_features_in_:
                raise ModelFileError(f"{type(self).__name__}.from_model: training.estimator.feature_names has "
                                     f"{len(saved.feature_names)} names for the model's {self.n_features_in_} "
                                     "inputs; allowed: one per input")
            self.feature_names_in_ = np.asarray(saved.feature_names, dtype=object)


class SavedEstimator(BaseModel):
    """What a model file keeps of the estimator that trained it (``training.estimator`` in ``model.json``)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    estimator: str
    params: dict[str, Any]
    seed: int = Field(ge=0)
    classes: list[str | int | float | bool] | None = None
    feature_names: list[ClassName] | None = None

    @field_validator("feature_names")
    @classmethod
    def _distinct(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(set(names)) != len(names):
            raise ValueError("feature names must be distinct")
        return names

    @classmethod
    def of(cls, model: Model, estimator: type[SNNEstimator]) -> dict:
        """What an estimator would have kept of a model ``snn train`` made: its layers and optimizer."""
        return {"estimator": estimator.__name__, "seed": 0, "classes": list(model.classes),
                "params": {"layers": [layer.to_json() for layer in model.spec.layers[:-1]],
                           "optimizer": model.optimizer.get("name", "gd"), "dtype": str(model.dtype),
                           "standardize": model.preprocessing.mean is not None}}


class SNNClassifier(ClassifierMixin, SNNEstimator):
    """A classifier: one sigmoid unit for two classes, else one softmax unit per class.

    ``predict_proba`` has one column per class of ``classes_`` (sorted, as sklearn sorts labels).
    """

    task = "classification"

    def partial_fit(self, X, y, classes=None):
        """One more epoch from the current parameters and optimizer state.

        ``classes``, every label there will be, is required on the first call.
        """
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if not first and classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to partial_fit, "
                             f"was: {self.classes_!r}")
        return self._partial_fit(X, y, classes)

    def _learn_targets(self, y, classes=None) -> None:
        check_classification_targets(y)
        self.classes_ = unique_labels(y if classes is None else classes)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs examples of at least 2 classes; "
                             f"got 1 class ({_plain(self.classes_[0])!r})")

    def _encoded(self, y) -> np.ndarray:
        check_classification_targets(y)
        unseen = ~np.isin(y, self.classes_)
        if unseen.any():
            raise ValueError(f"y contains labels not in classes_ {self.classes_!r}: {np.unique(y[unseen])!r}")
        return np.searchsorted(self.classes_, y)

    def _target_names(self) -> tuple[str, ...]:
        # model.json names each class once, in 1..200 printable characters; labels that cannot be named so
        # are named by their index there (the labels themselves are kept with the estimator's parameters).
        names = tuple(str(c) for c in self.classes_)
        if len(set(names)) == len(names) and all(0 < len(n) <= MAX_CLASS_NAME and n.isprintable() for n in names):
            return names
        return tuple(str(i) for i in range(len(names)))

    def _output_layer(self) -> dict:
        k = len(self.classes_)
        return {"units": 1, "activation": "sigmoid"} if k == 2 else {"units": k, "activation": "softmax"}

    def _adopt(self, model: Model, saved: SavedEstimator) -> None:
        classes = saved.classes if saved.classes is not None else list(model.classes)
        if len(classes) != len(model.classes) or len(set(classes)) != len(classes):
            raise ModelFileError(f"{type(self).__name__}.from_model: {len(classes)} saved classes for the model's "
                                 f"{len(model.classes)}; allowed: the model's, each once")
        self.classes_ = np.asarray(classes)
        super()._adopt(model, saved)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n_samples, n_classes)``, in the order of ``classes_``."""
        return self._outputs(X)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as a label of ``classes_``."""
        best = self.predict_proba(X).argmax(axis=1)  # first: it says NotFittedError before fit
        return self.classes_[best]


class SNNRegressor(RegressorMixin, SNNEstimator):
    """A regressor: one linear output unit per target, mean squared error. ``y`` may have several columns."""

    task = "regression"

    def partial_fit(self, X, y):
        """One more epoch from the current parameters and optimizer state."""
        return self._partial_fit(X, y)

    def _learn_targets(self, y, classes=None) -> None:
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]

    def _encoded(self, y) -> np.ndarray:
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} target column(s), but {type(self).__name__} was fitted with "
                             f"{self.n_outputs_}")
        return Y

    def _target_names(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(self.n_outputs_))

    def _output_layer(self) -> dict:
        return {"units": self.n_outputs_, "activation": "linear"}

    def _adopt(self, model: Model, saved: SavedEstimator) -> None:
        self.n_outputs_ = model.spec.n_out
        super()._adopt(model, saved)

    def predict(self, X) -> np.ndarray:
        """Predicted values: shape ``(n_samples,)`` for one target, else ``(n_samples, n_outputs)``."""
        Y = self._outputs(X)
        return Y.ravel() if Y.shape[1] == 1 else Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _quiet_checks():
    """scikit-learn's finiteness check sums the array first: inf and -inf warn there (NaN), then it raises."""
    return np.errstate(invalid="ignore", over="ignore")


def _plain(value):
    """NumPy scalars (a grid from ``np.arange``, say) as the plain numbers a config and a JSON file hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


__all__ = ["SNNClassifier", "SNNRegressor"]


def _kept_names(estimator) -> list[str] | None:
    """The fitted column names as a model file keeps them, or None when they are not names it can keep."""
    if not hasattr(estimator, "feature_names_in_"):
        return None
    names = feature_names(estimator.feature_names_in_)
    return None if names is None else list(names)
