"""snn: the Serverless Neural Network.

Networks written from scratch in NumPy, trained in process or, neuron by neuron,
as function invocations. The public Python API::

    import snn
    run = snn.train("examples/catvnoncat-4layer.json")
    model = snn.load_model(run.run_dir)
    model.predict(X)          # X of shape (n_x, m)
"""

from __future__ import annotations

from pathlib import Path

from .config import Config, load_config, parse_config
from .data import Dataset, load_dataset
from .errors import ConfigError, DataError, ModelFileError, SnnError
from .model import Model, load_model
from .run import Run

__version__ = "0.1.0"


def train(config, data_root=None, run_dir=None, on_epoch=None, save=True, resume=False, force=False,
          dataset=None, start=None, **overrides) -> Run:
    """Train from a config (a path, a dict, or a ``Config``); returns the ``Run``.

    ``overrides`` are dotted config fields, e.g. ``train(cfg, **{"training.epochs": 5})``.
    ``dataset`` (a ``Dataset`` in memory) replaces ``data.dataset``; ``start`` (a ``Model``)
    is where training goes on from (see ``snn.run.train``).
    """
    from . import run as _run

    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif isinstance(config, dict):
        config = parse_config(config, overrides=overrides)
    elif overrides:
        config = parse_config(config.model_dump(mode="json"), overrides=overrides)
    return _run.train(config, data_root, run_dir, on_epoch, save, resume, force, dataset, start)


__all__ = [
    "Config", "ConfigError", "DataError", "Dataset", "Model", "ModelFileError", "Run", "SnnError",
    "load_config", "load_dataset", "load_model", "parse_config", "train", "__version__",
]
