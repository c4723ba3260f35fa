"""What resilience costs, with the limits a user gets: chaos against a clean run, and checkpoints.

* chaos: the 40-epoch neuron-by-neuron run of ``examples/catvnoncat-4layer.json`` from
  the command line, clean and with ``--chaos dup=0.3,drop=0.1,fail=0.05``, each the
  median of ``--repeats`` runs (whole processes, start-up included), the ratio of the two
  medians, the hedges and retries of the chaos runs, and the largest difference of its
  cost history from the in-process run's;
* checkpoints: in-process trainings with the default time-based checkpoints against
  ``checkpoint_seconds=0`` (none but at a stop), the median wall time of each, their
  ratio, and the seconds the checkpoints themselves took (``summary.checkpoint_seconds``).

Prints one JSON object. Not a test.

    python bench/bench_resilience.py [--repeats 3] [--epochs 40] [--chaos dup=0.3,drop=0.1,fail=0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import snn

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
CAT4 = os.path.join(EXAMPLES, "catvnoncat-4layer.json")
CHECKPOINTED = {"catvnoncat-2layer": (os.path.join(EXAMPLES, "catvnoncat-2layer.json"), {}),
                "mnist-256-128": (os.path.join(EXAMPLES, "mnist-256-128.json"), {"training.epochs": 3})}


def cli_run(args: list[str]) -> tuple[float, dict]:
    """Wall seconds of ``snn train ARGS --json``, and its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "snn", "train", *args, "--json", "--quiet", "--out",
                               os.path.join(tmp, "run")], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        summary = json.loads(done.stdout)
        with open(os.path.join(tmp, "run", "history.csv")) as f:
            summary["costs"] = [float(line.split(",")[1]) for line in f.read().splitlines()[1:]]
        return wall, summary


def chaos_table(repeats: int, epochs: int, chaos: str, data_root) -> dict:
    base = [CAT4, "--granularity", "neuron", "--epochs", str(epochs)]
    clean, noisy = [], []
    for _ in range(repeats):  # interleaved, so that a noisy minute of the machine hits both
        clean.append(cli_run(base))
        noisy.append(cli_run([*base, "--chaos", chaos]))
    oracle = [r["cost"] for r in snn.train(CAT4, data_root=data_root, save=False, **{"training.epochs": epochs}).history]
    worst = max(max(abs(a - b) for a, b in zip(s["costs"], oracle)) for _, s in noisy)
    last = noisy[-1][1]
    return {
        "chaos": chaos, "epochs": epochs,
        "clean_wall_s": [round(w, 3) for w, _ in clean], "chaos_wall_s": [round(w, 3) for w, _ in noisy],
        "clean_median_s": statistics.median(w for w, _ in clean),
        "chaos_median_s": statistics.median(w for w, _ in noisy),
        "ratio": statistics.median(w for w, _ in noisy) / statistics.median(w for w, _ in clean),
        "max_cost_difference_vs_in_process": worst,
        "last_chaos_run": {k: last[k] for k in ("invocations", "retries", "duplicates_suppressed", "lost_and_retried",
                                                "failures_retried", "speculative", "speculative_won",
                                                "speculative_saved_seconds")},
    }


def checkpoint_table(repeats: int, data_root) -> dict:
    table = {}
    for name, (path, options) in CHECKPOINTED.items():
        runs = {"default": [], "off": []}
        spent = []
        for _ in range(repeats):
            for key, seconds in (("default", None), ("off", 0)):
                with tempfile.TemporaryDirectory() as tmp:
                    extra = {} if seconds is None else {"runtime.checkpoint_seconds": seconds}
                    t = time.perf_counter()
                    run = snn.train(path, data_root=data_root, run_dir=os.path.join(tmp, "run"), **options, **extra)
                    runs[key].append(time.perf_counter() - t)
                    if seconds is None:
                        spent.append(run.summary["checkpoint_seconds"] / run.summary["wall_seconds"])
        table[name] = {"default_wall_s": statistics.median(runs["default"]), "off_wall_s": statistics.median(runs["off"]),
                       "ratio": statistics.median(runs["default"]) / statistics.median(runs["off"]),
                       "checkpoint_share_of_wall": statistics.median(spent), "epochs": run.summary["epochs"]}
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--chaos", default="dup=0.3,drop=0.1,fail=0.05")
    ap.add_argument("--no-checkpoints", action="store_true")
    args = ap.parse_args()
    out = {"chaos_vs_clean_neuron": chaos_table(args.repeats, args.epochs, args.chaos, args.data)}
    if not args.no_checkpoints:
        out["checkpoints"] = checkpoint_table(args.repeats, args.data)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
