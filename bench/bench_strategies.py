"""MNIST 784-256-128-10 (float32, batch 128, Adam): data-parallel speedup and time to 97%.

* ``sync`` at 1 and 2 workers (``data:1``, ``data:2``) on ``local`` and ``ray``: seconds per
  epoch and the speedup of 2 workers over 1, on each engine;
* every strategy (sync, average, best, tree) in process: wall time and epochs until the
  test accuracy first reaches 97% (measured after each epoch, for this benchmark only:
  nothing is selected on it), or ``null`` when it does not within ``--max-epochs``.

Prints one JSON object. Not a test.

    python bench/bench_strategies.py [--engines local,ray] [--max-epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import snn
from snn.core.network import Network, predictions, targets
from snn.core.optimizers import make_optimizer
from snn.core.strategies import train_epochs_parallel
from snn.core.training import train_epochs
from snn.run import initial_params, network_spec, plan_of

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "examples", "mnist-256-128.json")
TARGET = 0.97


def epoch_time(engine: str, workers: int, epochs: int, data_root) -> float:
    run = snn.train(MNIST, data_root=data_root, save=False, **{
        "training.epochs": epochs, "data.validation_split": 0.0, "runtime.engine": engine,
        "runtime.granularity": f"data:{workers}", "runtime.store": "memory" if engine == "local" else None})
    return run.summary["seconds_per_epoch"]


def time_to_target(strategy: str, max_epochs: int, data_root) -> dict:
    """Train in process with the core loops, checking test accuracy after every epoch."""
    cfg = snn.load_config(MNIST, {"training.epochs": max_epochs, "training.strategy": strategy,
                                  "training.fan_in": 4, "data.validation_split": 0.0833 if strategy == "best" else 0.0})
    ds = snn.load_dataset("mnist", data_root).with_validation(cfg.data.validation_split, cfg.training.seed)
    spec = network_spec(cfg, ds)
    net, cols = Network(spec), ds.preprocessing.columns
    X, Y = cols(ds.x_train, np.float32), targets(ds.y_train, 10, np.float32)
    X_test = cols(ds.x_test, np.float32)
    X_val = None if ds.x_val is None else cols(ds.x_val, np.float32)
    Y_val = None if ds.y_val is None else targets(ds.y_val, 10, np.float32)
    params = initial_params(cfg, spec)
    opt = cfg.training.optimizer
    optimizer = make_optimizer(opt.name, **opt.hyperparameters())
    state = optimizer.init_state(params.flat.size, np.float32)
    plan = plan_of(cfg)
    if strategy == "sync":
        epochs = train_epochs(net, params, optimizer, state, X, Y, plan)
    else:
        epochs = train_epochs_parallel(net, params, optimizer, state, X, Y, plan, strategy, 4, X_val, Y_val)
    accuracies, reached, started = [], None, time.perf_counter()
    for result in epochs:
        # The test set is read here only to time the benchmark, never to choose anything.
        accuracies.append(float(np.mean(predictions(net.output(params, X_test)) == ds.y_test)))
        if reached is None and accuracies[-1] >= TARGET:
            reached = {"epoch": result.epoch, "seconds": time.perf_counter() - started}
    return {"epochs_to_97": reached and reached["epoch"], "seconds_to_97": reached and reached["seconds"],
            "test_accuracy_by_epoch": accuracies, "seconds": time.perf_counter() - started}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed per sync measurement (first is warm-up)")
    ap.add_argument("--max-epochs", type=int, default=8)
    args = ap.parse_args()
    out = {"network": "784-256-128-10", "dtype": "float32", "batch_size": 128, "sync": {}, "strategies": {}}
    for strategy in ("sync", "average", "best", "tree"):
        out["strategies"][strategy] = time_to_target(strategy, args.max_epochs, args.data)
    for engine in args.engines.split(","):
        if engine == "ray":
            import ray

            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        one, two = (epoch_time(engine, k, args.epochs, args.data) for k in (1, 2))
        out["sync"][engine] = {"data:1_s_per_epoch": one, "data:2_s_per_epoch": two, "speedup_2_over_1": one / two}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
