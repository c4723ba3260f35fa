"""A trained model: its math, parameters, preprocessing and classes; saved safely.

On disk a model is two files in one folder: ``model.safetensors`` (the weights and
the optimizer state, raw tensors, nothing executable) and ``model.json`` (the
architecture, preprocessing, classes, optimizer and training summary). Nothing
is ever unpickled.

A model file is input like any other, whoever wrote it: every field of ``model.json``
goes through the schema below, both files are bounded in size, and every tensor must
have the name, shape and dtype the architecture gives it and hold finite values.
Anything else is a ``ModelFileError`` of one line, never another exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator,
                      model_validator)

from .config import MAX_LAYERS, MAX_UNITS, AnyLayer, check_output_layer
from .core.activations import ACTIVATIONS
from .core.losses import LOSSES
from .core.network import Network, NetworkSpec, Params, predictions
from .core.optimizers import OPTIMIZERS, make_optimizer
from .data.checks import MAX_CLASS_NAME
from .data.dataset import MIN_STD, Preprocessing
from .documents import read_document, schema_problem, short
from .errors import ModelFileError
from .files import write_json
from .tensorfile import TENSOR_HEADER_BYTES, check_tensors, read_tensors, write_tensors

# Version 2 names the input shape and each layer's type; version 1 (dense layers on a
# vector input) is still read, and tested on a file the first writer wrote.
FORMAT, VERSION, READS = "snn-model", 2, (1, 2)
WEIGHTS, SIDECAR = "model.safetensors", "model.json"
OPTIMIZER_PREFIX = "optimizer."
MAX_SIDECAR_BYTES = 16 << 20  # the architecture, the classes and a training summary: kilobytes in practice
MAX_INPUT = 1 << 24  # inputs per example: far past any image this library reads


@dataclass
class Model:
    """``predict`` takes inputs as columns, shape ``(n_x, m)`` (or one ``(n_x,)`` vector).

    A regression model (``task="regression"``) has one output unit per target, named by
    ``classes``; its ``predict_proba`` is the predicted values, and ``predict`` means nothing.
    """

    spec: NetworkSpec
    params: Params
    preprocessing: Preprocessing
    classes: tuple[str, ...]
    optimizer: dict = field(default_factory=lambda: {"name": "gd"})
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"

    @property
    def network(self) -> Network:
        return Network(self.spec)

    @property
    def dtype(self):
        return self.params.flat.dtype

    def _columns(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=self.dtype)
        X = X.reshape(-1, 1) if X.ndim == 1 else X
        if X.ndim != 2 or X.shape[0] != self.spec.n_input:
            raise ValueError(f"input of shape {X.shape}: expected ({self.spec.n_input}, m) columns")
        return X

    def predict_proba(self, X) -> np.ndarray:
        """The output layer ``A_L``, shape ``(n_out, m)``."""
        return self.network.output(self.params, self._columns(X))

    def predict(self, X) -> np.ndarray:
        """Class indices, shape ``(m,)``."""
        return predictions(self.predict_proba(X))

    def predict_raw(self, x) -> np.ndarray:
        """Class indices for raw examples of shape ``(m, *input_shape)`` (e.g. uint8 images)."""
        return self.predict(self.preprocessing.columns(x, self.dtype))

    def class_probabilities(self, X) -> np.ndarray:
        """Per-class probabilities ``(n_classes, m)``; one sigmoid unit becomes ``[1 - a, a]``."""
        return _per_class(self.predict_proba(X))

    def outputs(self, raw) -> np.ndarray:
        """Each raw example's answer in numbers, ``(m, k)``, for raw examples ``(m, *input_shape)``:
        every class's probability (one sigmoid unit as ``[1 - p, p]``), or a regression's value per target."""
        A = self.predict_proba(self.preprocessing.columns(raw, self.dtype))
        return (A if self.task == "regression" else _per_class(A)).T

    def answers(self, outputs: np.ndarray) -> list[dict]:
        """Rows of ``outputs`` as people read them: a classifier's label, its index and probability,
        and every class's probability; a regression's ``values``, by target."""
        if self.task == "regression":
            return [{"values": dict(zip(self.classes, map(float, row)))} for row in outputs]
        out = []
        for p in outputs:
            k = int(p.argmax())
            out.append({"label": self.classes[k], "index": k, "probability": float(p[k]),
                        "probabilities": dict(zip(self.classes, map(float, p)))})
        return out

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        tensors = dict(self.params.tensors())
        tensors.update({OPTIMIZER_PREFIX + k: v for k, v in self.optimizer_state.items()})
        write_tensors(folder / WEIGHTS, tensors)
        write_json(folder / SIDECAR, self._sidecar())
        return folder

    def _sidecar(self) -> dict:
        sidecar = {
            "format": FORMAT,
            "version": VERSION,
            "architecture": {**self.spec.to_json(), "dtype": str(self.dtype)},
            "preprocessing": self.preprocessing.to_json(),
            "classes": list(self.classes),
            "optimizer": self.optimizer,
            "training": self.summary,
        }
        # Written only when it says something, so a classifier's file is what it always was.
        return sidecar if self.task == "classification" else {**sidecar, "task": self.task}


def _per_class(A: np.ndarray) -> np.ndarray:
    return np.vstack([1 - A, A]) if A.shape[0] == 1 else A


# --- model.json, field by field -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    # strict: "3" is not a unit count and true is not a number; no NaN or infinity anywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LayerFile(_Strict):
    units: int = Field(gt=0, le=MAX_UNITS)
    activation: Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]


class ArchitectureFileV1(_Strict):
    """Version 1: dense layers on a vector of ``n_input`` values."""

    n_input: int = Field(gt=0, le=MAX_INPUT)
    layers: list[LayerFile] = Field(min_length=1, max_length=MAX_LAYERS)
    loss: Literal[tuple(LOSSES)]  # type: ignore[valid-type]
    dtype: Literal["float32", "float64"]

    @model_validator(mode="after")
    def _softmax_needs_classes(self):
        check_output_layer(self.layers[-1])
        return self

    def spec(self) -> NetworkSpec:
        return NetworkSpec(self.n_input, tuple((l.units, l.activation) for l in self.layers), self.loss)


class ArchitectureFile(_Strict):
    """Version 2: an input shape, and layers of any registered type (the config's own schema)."""

    input_shape: list[Annotated[int, Field(gt=0, le=MAX_INPUT)]] = Field(min_length=1, max_length=3)
    layers: list[AnyLayer] = Field(min_length=1, max_length=MAX_LAYERS)
    loss: Literal[tuple(LOSSES)]  # type: ignore[valid-type]
    dtype: Literal["float32", "float64"]

    @model_validator(mode="after")
    def _builds(self):
        if math.prod(self.input_shape) > MAX_INPUT:
            raise ValueError(f"input_shape {self.input_shape} has more than {MAX_INPUT} values")
        check_output_layer(self.layers[-1])
        self.spec().built  # every layer fits the shape before it  # noqa: B018
        return self

    @property
    def n_input(self) -> int:
        return math.prod(self.input_shape)

    def spec(self) -> NetworkSpec:
        return NetworkSpec(tuple(self.input_shape), tuple(l.spec() for l in self.layers), self.loss)


def _printable(name: str) -> str:
    """A name a model file keeps is shown in terminals and pages: no control or format characters, no line breaks."""
    if not name.isprintable():
        raise ValueError("must be printable text: no control characters, line breaks or invisible format characters")
    return name


# A class's, a target's or a column's name.
ClassName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CLASS_NAME), AfterValidator(_printable)]


class PreprocessingFile(_Strict):
    kind: Literal["image", "table"]
    shape: list[Annotated[int, Field(gt=0, le=MAX_INPUT)]] = Field(min_length=1, max_length=4)
    scale: float = Field(gt=0)
    channels_first: bool = False
    # A standardised table's per-feature mean and std (finite: no NaN or infinity is read anywhere).
    mean: list[float] | None = Field(None, max_length=MAX_INPUT)
    std: list[Annotated[float, Field(ge=MIN_STD)]] | None = Field(None, max_length=MAX_INPUT)
    features: list[ClassName] | None = Field(None, max_length=MAX_INPUT)

    @model_validator(mode="after")
    def _images_are_2d(self):
        if self.kind == "image" and len(self.shape) not in (2, 3):
            raise ValueError(f"an image's shape is (height, width) or (height, width, channels), not {self.shape}")
        return self

    @model_validator(mode="after")
    def _one_name_per_feature(self):
        if self.features is None:
            return self
        if self.kind != "table":
            raise ValueError("features names a table's columns; an image has none")
        if len(self.features) != math.prod(self.shape) or len(set(self.features)) != len(self.features):
            raise ValueError(f"{len(self.features)} feature names for {math.prod(self.shape)} features; "
                             "allowed: one distinct name each")
        odd = next((name for name in self.features if name != name.strip() or not name.isprintable()), None)
        if odd is not None:  # such a name could never match a header, which is read stripped
            raise ValueError(f"feature name {short(odd)}; allowed: printable, without spaces at either end")
        return self

    @model_validator(mode="after")
    def _one_mean_and_std_per_feature(self):
        if self.mean is None and self.std is None:
            return self
        if self.kind != "table" or self.mean is None or self.std is None:
            raise ValueError("mean and std come together, and only for a table")
        n = math.prod(self.shape)
        if not len(self.mean) == len(self.std) == n:
            raise ValueError(f"{len(self.mean)} means and {len(self.std)} stds for {n} features; allowed: one each")
        return self


class OptimizerFile(_Strict):
    name: Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]
    beta: float | None = Field(None, ge=0, lt=1)
    beta1: float | None = Field(None, ge=0, lt=1)
    beta2: float | None = Field(None, ge=0, lt=1)
    epsilon: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _its_own_hyperparameters(self):
        own = {f.name for f in fields(OPTIMIZERS[self.name])}
        foreign = sorted(set(self.hyperparameters()) - own)
        if foreign:
            raise ValueError(f"{self.name} has no hyperparameter {', '.join(foreign)}; "
                             f"its own: {', '.join(sorted(own)) or 'none'}")
        return self

    def hyperparameters(self) -> dict[str, float]:
        return self.model_dump(exclude={"name"}, exclude_none=True)


class SidecarFile(_Strict):
    format: Literal[FORMAT]  # type: ignore[valid-type]
    version: Literal[VERSION]  # type: ignore[valid-type]
    architecture: ArchitectureFile
    preprocessing: PreprocessingFile
    classes: list[ClassName] = Field(min_length=1, max_length=MAX_UNITS)
    optimizer: OptimizerFile = OptimizerFile(name="gd")
    training: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"

    @field_validator("training")
    @classmethod
    def _dataset_is_a_name(cls, value: dict) -> dict:
        if not isinstance(value.get("dataset", ""), str):
            raise ValueError("training.dataset must be a dataset name (a string)")
        return value

    @model_validator(mode="after")
    def _fits_together(self):
        inputs = math.prod(self.preprocessing.shape)
        if inputs != self.architecture.n_input:
            raise ValueError(f"preprocessing.shape {self.preprocessing.shape} gives {inputs} inputs; "
                             f"architecture.n_input is {self.architecture.n_input}")
        units = self.architecture.layers[-1].units
        if self.task == "regression" and len(self.classes) != units:
            raise ValueError(f"{len(self.classes)} target names for {units} output unit(s); allowed: one per unit")
        if self.task == "classification" and len(self.classes) != (2 if units == 1 else units):
            raise ValueError(f"{len(self.classes)} classes for {units} output unit(s); allowed: one class per unit, "
                             "or 2 classes for 1 unit")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct names")
        return self


class SidecarFileV1(SidecarFile):
    version: Literal[1]
    architecture: ArchitectureFileV1


SIDECARS = {1: SidecarFileV1, VERSION: SidecarFile}


# --- reading ------------------------------------------------------------------------------------------------------


def model_folder(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.name in (WEIGHTS, SIDECAR):
        return path.parent
    raise ModelFileError(f"{path}: not a model; give a run folder or a folder holding {SIDECAR} and {WEIGHTS}")


def load_model(path: str | Path) -> Model:
    """Load a model from a run folder, a model folder, or either of its two files."""
    folder = model_folder(Path(path))
    meta = _read_sidecar(folder / SIDECAR)
    spec, dtype = meta.architecture.spec(), np.dtype(meta.architecture.dtype)
    weights_bytes, path = spec.n_params * dtype.itemsize, folder / WEIGHTS
    # The weights at least (so a model.json that claims a huge network allocates nothing), and at most
    # two optimizer state arrays of the same size and a step count besides.
    tensors = read_tensors(path, ModelFileError, min_bytes=weights_bytes,
                           max_bytes=3 * weights_bytes + 8 + TENSOR_HEADER_BYTES)
    params = Params.zeros(spec, dtype)
    expected = {name: (view.shape, dtype) for name, view in params.tensors().items()}
    state_names = {k for k in tensors if k.startswith(OPTIMIZER_PREFIX)}
    if state_names:  # a model may come without its optimizer state, never with part of it
        optimizer = make_optimizer(meta.optimizer.name, **meta.optimizer.hyperparameters())
        state = optimizer.init_state(spec.n_params, dtype)
        expected.update({OPTIMIZER_PREFIX + k: (v.shape, v.dtype) for k, v in state.items()})
    check_tensors(path, tensors, expected, ModelFileError)
    for name, view in params.tensors().items():
        view[...] = tensors[name]
    state = {k[len(OPTIMIZER_PREFIX):]: tensors[k] for k in state_names}
    return Model(spec, params, Preprocessing.from_json(meta.preprocessing.model_dump()), tuple(meta.classes),
                 {"name": meta.optimizer.name, **meta.optimizer.hyperparameters()}, state, dict(meta.training), meta.task)


def _read_sidecar(path: Path) -> SidecarFile:
    if not path.exists():
        raise ModelFileError(f"{path}: file not found; help: a model folder holds {SIDECAR} and {WEIGHTS}")
    meta = read_document(path, "model sidecar", ModelFileError, MAX_SIDECAR_BYTES)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an {FORMAT} sidecar (its 'format' field must be {FORMAT!r})")
    if meta.get("version") not in READS or isinstance(meta.get("version"), bool):
        raise ModelFileError(f"{path}: version {short(meta.get('version'))}; this snn reads versions "
                             f"{', '.join(map(str, READS))}")
    try:
        return SIDECARS[meta["version"]].model_validate(meta)
    except ValidationError as e:
        raise ModelFileError(f"{path}: {schema_problem(e)}; help: it was changed after snn wrote it; "
                             "train the model again or restore its files") from None
