"""A tiny convolutional network on real MNIST, for the tests of the service, the page and the report.

conv 3x3 x4 -> max-pool 2 -> flatten -> 10 softmax, one epoch on 500 images: about two seconds,
trained once per test session and shared; a test that writes into the run folder copies it first.
"""

from pathlib import Path

import snn

TINY_CNN = {
    "name": "tiny-cnn",
    "data": {"dataset": "mnist", "subset": 500},
    "network": {"layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"},
                           {"type": "maxpool2d", "size": 2}, {"type": "flatten"},
                           {"units": 10, "activation": "softmax"}], "init": "he"},
    "training": {"epochs": 1, "batch_size": 50, "seed": 1, "optimizer": {"name": "adam", "learning_rate": 0.01}},
}
MAPS = {1: (4, 26, 26), 2: (4, 13, 13)}  # the image layers' outputs, by layer number

_runs: dict[Path, Path] = {}  # by the session's temporary root: one training per session


def tiny_cnn_run(tmp_path_factory, data_root: Path) -> Path:
    """The run folder of TINY_CNN, trained on the session's first call."""
    session = tmp_path_factory.getbasetemp()
    if session not in _runs:
        folder = tmp_path_factory.mktemp("tiny-cnn") / "run"
        snn.train(TINY_CNN, data_root=data_root, run_dir=folder)
        _runs[session] = folder
    return _runs[session]
