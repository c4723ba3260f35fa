"""A 24-trial random search over MNIST 784-x-10 networks, one and two trials at a time.

Each trial trains a 784-x-10 network (x, the learning rate and the batch size drawn
at random) for a few epochs on a subset of MNIST, validated on a held-out split.
Prints wall time and the best validation accuracy for P = 1 and P = 2, and their
ratio. Not a test.

    python bench/bench_tune.py [--trials 24] [--epochs 3] [--subset 12000] [--engine local]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from snn.config import RuntimeConfig
from snn.tune import base_config, load_space, open_study, plan_trials, run_study

SPACE = {"params": {"network.hidden_units": [16, 32, 64, 128, 256],
                    "training.optimizer.learning_rate": {"low": 0.0003, "high": 0.01, "log": True},
                    "training.batch_size": [32, 64, 128]}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--subset", type=int, default=12000)
    ap.add_argument("--engine", default="local")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    base = {"name": "mnist-x", "data": {"dataset": "mnist", "validation_split": 0.1, "subset": args.subset},
            "network": {"layers": [{"units": 64, "activation": "relu"}, {"units": 10, "activation": "softmax"}],
                        "dtype": "float32"},
            "training": {"epochs": args.epochs, "batch_size": 64, "optimizer": {"name": "adam", "learning_rate": 0.001}}}
    (work / "base.json").write_text(json.dumps(base))
    (work / "space.yaml").write_text(yaml.safe_dump(SPACE))
    out = {"trials": args.trials, "epochs": args.epochs, "subset": args.subset, "engine": args.engine}
    for parallel in (1, 2):
        study = open_study(work / f"p{parallel}", "mnist-x", "random", "none", resume=False, seed=0)
        space = load_space(work / "space.yaml")
        n = plan_trials(study, space, "random", args.trials)
        started = time.perf_counter()
        run_study(study, space, base_config(work / "base.json"), n, parallel, RuntimeConfig(engine=args.engine),
                  args.data)
        best = study.best_trial
        out[f"P={parallel}"] = {"wall_seconds": time.perf_counter() - started,
                                "best_val_accuracy": best.user_attrs["best_val_accuracy"],
                                "best_params": best.params}
    out["speedup_P2_over_P1"] = out["P=1"]["wall_seconds"] / out["P=2"]["wall_seconds"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
