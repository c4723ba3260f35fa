"""The runtime's price: engine overhead per invocation, and seconds per epoch per granularity.

* overhead: an empty handler (``kind: noop``) invoked one at a time through each engine,
  next to Ray's own bare task round trip (``ray.get(f.remote())``) measured in the same run;
* cat 4-layer (12288-20-7-5-1, float64, full batch): seconds per epoch for every
  granularity on every engine (on local the median of ``--repeats`` runs), next to the
  in-process network (the same median), as ratios;
* MNIST CNN (``examples/mnist-cnn.yaml``, float32, batch 128): seconds per epoch in
  process and at ``data:1`` and ``data:2`` on each engine (medians of ``--repeats``), the
  speedup of 2 workers over 1, and one epoch of a subset neuron by neuron (one invocation
  per filter and per dense neuron).

Prints one JSON object. Not a test.

    python bench/bench_runtime.py [--engines local,ray,lithops] [--epochs 20] [--calls 300]
                                  [--cnn-examples 60000] [--cnn-neuron-examples 1280] [--no-cat]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import snn
from snn.runtime.engines import make_engine, wait_all

HERE = os.path.dirname(os.path.abspath(__file__))
CAT = os.path.join(HERE, "..", "examples", "catvnoncat-4layer.json")
CNN = os.path.join(HERE, "..", "examples", "mnist-cnn.yaml")
GRANULARITIES = ["network", "layer", "block:4", "neuron", "data:2"]
NOOP = {"kind": "noop"}


def per_call(fn, calls):
    fn()  # warm up
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def engine_overhead(name, calls):
    engine = make_engine(name)
    try:
        def one():
            (h,) = engine.submit([NOOP])
            engine.wait([h], None)
            engine.outcome(h)

        def batch():
            hs = engine.submit([NOOP] * 20)
            wait_all(engine, hs, 600)

        return {"sequential_us": per_call(one, calls) * 1e6, "batched_us": per_call(batch, max(1, calls // 20)) / 20 * 1e6}
    finally:
        engine.close()


def bare_ray(calls):
    import ray

    @ray.remote
    def f():
        return None

    return per_call(lambda: ray.get(f.remote()), calls) * 1e6


def epoch_seconds(engine, granularity, epochs, data_root, repeats=1):
    """Median seconds per epoch of ``repeats`` runs, and invocations per epoch (hedges' copies included)."""
    store = "memory" if engine == "local" else None  # memory forces the runtime even for network
    times = []
    for _ in range(repeats):
        run = snn.train(CAT, data_root=data_root, save=False, **{"training.epochs": epochs, "runtime.engine": engine,
                                                                "runtime.granularity": granularity, "runtime.store": store})
        times.append(run.summary["seconds_per_epoch"])
    return statistics.median(times), run.summary["invocations"] / epochs


def start_ray():
    """Ray starts late, once: a running Ray slows everything measured after it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def cnn_epoch(examples, data_root, engine=None, granularity=None):
    """Seconds of one epoch of the MNIST CNN on the first ``examples`` images, and its invocations."""
    options = {"training.epochs": 1, "data.subset": examples}  # the example as it is: 1/12 held out
    if engine:
        options.update({"runtime.engine": engine, "runtime.granularity": granularity,
                        "runtime.store": "memory" if engine == "local" else None})
    run = snn.train(CNN, data_root=data_root, save=False, **options)
    return {"s_per_epoch": run.summary["seconds_per_epoch"], "invocations": run.summary.get("invocations", 0),
            "subset": examples, "trained_on": run.summary["n_train"]}


def cnn_table(engines, examples, neuron_examples, data_root, repeats=1):
    """The CNN's epochs in process and at ``data:1`` and ``data:2`` on each engine (medians of ``repeats``,
    taken in turn so drift on a shared machine falls on both), and ``data:2``'s speedup over ``data:1``."""
    table = {"in_process": cnn_epoch(examples, data_root)}
    for name in engines:
        if name == "lithops":
            continue  # its localhost backend pays ~0.5 s a stage: 470 steps would take minutes of nothing
        if name == "ray":
            start_ray()
        runs = {g: [] for g in ("data:1", "data:2")}
        for _ in range(repeats):
            for g in runs:
                runs[g].append(cnn_epoch(examples, data_root, name, g))
        for g, rows in runs.items():
            row = table[f"{name}_{g}"] = {**rows[0], "s_per_epoch": statistics.median(r["s_per_epoch"] for r in rows),
                                          "runs_s": [r["s_per_epoch"] for r in rows]}
            row["vs_in_process"] = row["s_per_epoch"] / table["in_process"]["s_per_epoch"]
        table[f"{name}_data2_speedup"] = table[f"{name}_data:1"]["s_per_epoch"] / table[f"{name}_data:2"]["s_per_epoch"]
    if neuron_examples:
        neuron = table["local_neuron_subset"] = cnn_epoch(neuron_examples, data_root, "local", "neuron")
        small = cnn_epoch(neuron_examples, data_root)
        neuron["vs_in_process_same_subset"] = neuron["s_per_epoch"] / small["s_per_epoch"]
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--engines", default="local,ray,lithops")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per measurement on local (ray, lithops: fewer)")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--cnn-examples", type=int, default=60000, help="MNIST images per CNN epoch (0: skip the CNN)")
    ap.add_argument("--cnn-neuron-examples", type=int, default=1280,
                    help="images of the neuron-by-neuron CNN epoch (0: skip it)")
    ap.add_argument("--no-cat", action="store_true", help="skip the cat 4-layer table")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per cat measurement on local, and per CNN data:K measurement (the median is kept)")
    args = ap.parse_args()
    engines = args.engines.split(",")
    overhead, table = {}, {}
    out = {"overhead_per_invocation": overhead, "cat_4layer_seconds_per_epoch": table}
    if args.cnn_examples:
        out["mnist_cnn"] = cnn_table(engines, args.cnn_examples, args.cnn_neuron_examples, args.data, args.repeats)
    if args.no_cat:
        print(json.dumps(out, indent=2))
        return
    # In process first, and each engine in turn: a running Ray slows everything after it.
    in_process = table["in_process_network"] = statistics.median(
        snn.train(CAT, data_root=args.data, save=False, **{"training.epochs": args.epochs}).summary["seconds_per_epoch"]
        for _ in range(args.repeats))
    for name in engines:
        if name == "ray":
            start_ray()
            overhead["ray_bare_task_us"] = bare_ray(args.calls)
        overhead[name] = engine_overhead(name, args.calls if name != "lithops" else 10)
        epochs = {"local": args.epochs, "ray": max(2, args.epochs // 5), "lithops": 1}[name]
        rows = {}
        for g in GRANULARITIES:
            secs, calls = epoch_seconds(name, g, epochs, args.data, args.repeats if name == "local" else 1)
            rows[g] = {"s_per_epoch": secs, "invocations_per_epoch": calls, "vs_in_process": secs / in_process}
        for g in GRANULARITIES:
            rows[g]["vs_network_granularity"] = rows[g]["s_per_epoch"] / rows["network"]["s_per_epoch"]
        rows["neuron_full_2500_epochs_minutes"] = rows["neuron"]["s_per_epoch"] * 2500 / 60
        table[name] = rows
    if "ray" in overhead:
        overhead["ray_vs_bare_ratio"] = overhead["ray"]["sequential_us"] / overhead["ray_bare_task_us"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
