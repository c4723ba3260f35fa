"""Seconds per epoch of ``examples/mnist-cnn.yaml`` in snn and in PyTorch, and their peak memory.

The same network (conv 3x3 32, max-pool 2, conv 3x3 64, max-pool 2, dense 128, 10,
with the example's dropout), batch (128), dtype (float32), optimizer (Adam 1e-3) and
threads, on the same MNIST
training images, measured in the same run. Each measurement runs in a child process
of its own, so its peak resident memory (``resource.getrusage``) is its own; each is
repeated and the median reported, because a shared 2-core machine is noisy. PyTorch
is measured only when it happens to be installed (it is not a dependency). Prints
one JSON object. Not a test.

    python bench/bench_cnn.py [--examples 60000] [--epochs 1] [--repeats 3] [--dropout 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import snn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_training import library_epochs, problem, torch_epochs, torch_version  # noqa: E402

EXAMPLE = "mnist-cnn.yaml"


def child(framework: str, examples: int, epochs: int, data_root: str | None, dropout: float | None) -> dict:
    """One timed training in this process: seconds per epoch and the process's peak memory."""
    cfg, spec, X, Y = problem(EXAMPLE, data_root)
    if dropout is not None:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"dropout": dropout})})
    X, Y = X[:, :examples], Y[:, :examples]
    t = cfg.training
    start = time.perf_counter()
    if framework == "snn":
        library_epochs(cfg, spec, X, Y, epochs)
    else:
        torch_epochs(X, Y, spec, epochs, t.batch_size, t.optimizer.name, t.optimizer.learning_rate, t.dropout)
    seconds = (time.perf_counter() - start) / epochs
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"s_per_epoch": seconds, "peak_rss_mib": peak_kib / 1024, "examples": X.shape[1]}


def training_of(example: str) -> dict:
    cfg = snn.load_config(os.path.join(HERE, "..", "examples", example))
    t = cfg.training
    return {"dtype": cfg.network.dtype, "batch_size": t.batch_size, "optimizer": t.optimizer.name,
            "learning_rate": t.optimizer.learning_rate, "dropout": t.dropout}


def measure(framework: str, args) -> dict:
    runs = []
    for _ in range(args.repeats):
        cmd = [sys.executable, __file__, "--child", framework, "--examples", str(args.examples),
               "--epochs", str(args.epochs)] + (["--data", args.data] if args.data else []) + (
               ["--dropout", str(args.dropout)] if args.dropout is not None else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    return {"s_per_epoch": statistics.median(r["s_per_epoch"] for r in runs),
            "s_per_epoch_runs": [round(r["s_per_epoch"], 3) for r in runs],
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs), "examples": runs[0]["examples"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root (else $SNN_DATA_DIR)")
    ap.add_argument("--examples", type=int, default=60000, help="training images per epoch (MNIST has 60,000)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=None, help="instead of the example's (0: none)")
    ap.add_argument("--child", choices=["snn", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.examples, args.epochs, args.data, args.dropout)))
        return
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                          "torch": torch_version()},
              "network": EXAMPLE, **training_of(EXAMPLE),
              **({"dropout": args.dropout} if args.dropout is not None else {}),
              "epochs_timed": args.epochs, "repeats": args.repeats, "snn": measure("snn", args)}
    if torch_version():
        result["torch"] = measure("torch", args)
        result["snn_over_torch"] = result["snn"]["s_per_epoch"] / result["torch"]["s_per_epoch"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
