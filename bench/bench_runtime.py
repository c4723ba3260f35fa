"""The runtime's price: engine overhead per invocation, and seconds per epoch per granularity.

* overhead: an empty handler (``kind: noop``) invoked one at a time through each engine,
  next to Ray's own bare task round trip (``ray.get(f.remote())``) measured in the same run;
* cat 4-layer (12288-20-7-5-1, float64, full batch): seconds per epoch for every
  granularity on every engine, next to the in-process network, as ratios.

Prints one JSON object. Not a test.

    python bench/bench_runtime.py [--engines local,ray,lithops] [--epochs 20] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import snn
from snn.runtime.engines import make_engine

HERE = os.path.dirname(os.path.abspath(__file__))
CAT = os.path.join(HERE, "..", "examples", "catvnoncat-4layer.json")
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
            engine.wait(hs, None)

        return {"sequential_us": per_call(one, calls) * 1e6, "batched_us": per_call(batch, max(1, calls // 20)) / 20 * 1e6}
    finally:
        engine.close()


def bare_ray(calls):
    import ray

    @ray.remote
    def f():
        return None

    return per_call(lambda: ray.get(f.remote()), calls) * 1e6


def epoch_seconds(engine, granularity, epochs, data_root):
    store = "memory" if engine == "local" else None  # memory forces the runtime even for network
    run = snn.train(CAT, data_root=data_root, save=False, **{"training.epochs": epochs, "runtime.engine": engine,
                                                            "runtime.granularity": granularity, "runtime.store": store})
    return run.summary["seconds_per_epoch"], run.summary["invocations"] / epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--engines", default="local,ray,lithops")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per measurement on local (ray, lithops: fewer)")
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    engines = args.engines.split(",")
    overhead, table = {}, {}
    out = {"overhead_per_invocation": overhead, "cat_4layer_seconds_per_epoch": table}
    # In process first, and each engine in turn: a running Ray slows everything after it.
    base = snn.train(CAT, data_root=args.data, save=False, **{"training.epochs": args.epochs})
    in_process = table["in_process_network"] = base.summary["seconds_per_epoch"]
    for name in engines:
        if name == "ray":
            import ray

            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            overhead["ray_bare_task_us"] = bare_ray(args.calls)
        overhead[name] = engine_overhead(name, args.calls if name != "lithops" else 10)
        epochs = {"local": args.epochs, "ray": max(2, args.epochs // 5), "lithops": 1}[name]
        rows = {}
        for g in GRANULARITIES:
            secs, calls = epoch_seconds(name, g, epochs, args.data)
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
