"""A trained model: its math, parameters, preprocessing and classes; saved safely.

On disk a model is two files in one folder: ``model.safetensors`` (the weights and
the optimizer state, raw tensors, nothing executable) and ``model.json`` (the
architecture, preprocessing, classes, optimizer and training summary). Nothing
is ever unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .core.network import Network, NetworkSpec, Params, predictions
from .data.dataset import Preprocessing
from .errors import ModelFileError
from .files import atomic_path, write_json

FORMAT, VERSION = "snn-model", 1
WEIGHTS, SIDECAR = "model.safetensors", "model.json"
OPTIMIZER_PREFIX = "optimizer."


@dataclass
class Model:
    """``predict`` takes inputs as columns, shape ``(n_x, m)`` (or one ``(n_x,)`` vector)."""

    spec: NetworkSpec
    params: Params
    preprocessing: Preprocessing
    classes: tuple[str, ...]
    optimizer: dict = field(default_factory=lambda: {"name": "gd"})
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

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
        A = self.predict_proba(X)
        return np.vstack([1 - A, A]) if A.shape[0] == 1 else A

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        tensors = {k: np.ascontiguousarray(v) for k, v in self.params.tensors().items()}
        tensors.update({OPTIMIZER_PREFIX + k: np.ascontiguousarray(v) for k, v in self.optimizer_state.items()})
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(tensors, str(tmp))
        write_json(folder / SIDECAR, self._sidecar())
        return folder

    def _sidecar(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "architecture": {
                "n_input": self.spec.n_input,
                "layers": [{"units": u, "activation": a} for u, a in self.spec.layers],
                "loss": self.spec.loss,
                "dtype": str(self.dtype),
            },
            "preprocessing": self.preprocessing.to_json(),
            "classes": list(self.classes),
            "optimizer": self.optimizer,
            "training": self.summary,
        }


def _model_folder(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.name in (WEIGHTS, SIDECAR):
        return path.parent
    raise ModelFileError(f"{path}: not a model; give a run folder or a folder holding {SIDECAR} and {WEIGHTS}")


def load_model(path: str | Path) -> Model:
    """Load a model from a run folder, a model folder, or either of its two files."""
    folder = _model_folder(Path(path))
    meta = _read_sidecar(folder / SIDECAR)
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except FileNotFoundError:
        raise ModelFileError(f"{folder / WEIGHTS}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{folder / WEIGHTS}: not a readable safetensors file ({e})") from None
    try:
        arch = meta["architecture"]
        spec = NetworkSpec(arch["n_input"], tuple((l["units"], l["activation"]) for l in arch["layers"]), arch["loss"])
        params = Params.zeros(spec.sizes, np.dtype(arch["dtype"]))
        for name, view in params.tensors().items():
            if name not in tensors or tensors[name].shape != view.shape:
                found = tensors[name].shape if name in tensors else "nothing"
                raise ModelFileError(f"{folder / WEIGHTS}: tensor {name} should have shape {view.shape}, found {found}")
            view[...] = tensors[name]
        state = {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
        return Model(spec, params, Preprocessing.from_json(meta["preprocessing"]), tuple(meta["classes"]),
                     meta.get("optimizer", {"name": "gd"}), state, meta.get("training", {}))
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{folder / SIDECAR}: missing or malformed field {e}") from None


def _read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an {FORMAT} sidecar (its 'format' field must be {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"{path}: version {meta.get('version')!r}; this snn reads version {VERSION}")
    return meta
