"""What a change costs on a clean run: seconds per epoch of this tree against another commit's, measured in turn.

The other commit is checked out with ``git worktree`` into a temporary folder; each round runs the same
measurement once in each tree, in a fresh process, alternating which goes first, so that a machine that
slows down over the run slows both. Reported: the median over rounds of each tree's seconds per epoch per
case, and new / baseline. No chaos, the defaults a user gets.

    python bench/bench_against.py --baseline 764f70d [--rounds 5] [--epochs 40] [--cases layer,neuron]

Prints one JSON object and writes it to bench/results/against-BASELINE.json with the command. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Run inside each tree: the cat 4-layer network (full batch) at one granularity, in process.
MEASURE = """
import json, sys, snn
granularity, epochs = sys.argv[1], int(sys.argv[2])
overrides = {"training.epochs": epochs, "runtime.checkpoint_seconds": 0}
if granularity != "in-process":
    overrides["runtime.granularity"] = granularity
run = snn.train(sys.argv[3], save=False, **overrides)
print(json.dumps(run.summary["seconds_per_epoch"]))
"""


def measure(src: Path, case: str, epochs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", MEASURE, case, str(epochs),
                          str(ROOT / "examples" / "catvnoncat-4layer.json")],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="a commit to compare against")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--cases", default="in-process,layer,neuron")
    args = ap.parse_args()
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.baseline],
                       check=True)
        try:
            trees = {"new": ROOT / "src", "baseline": old / "src"}
            times: dict = {case: {name: [] for name in trees} for case in cases}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for case in cases:
                    for name in order:
                        times[case][name].append(measure(trees[name], case, args.epochs))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True)
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "baseline": args.baseline,
              "network": "catvnoncat-4layer (12288-20-7-5-1, float64, full batch)", "engine": "local, memory store",
              "epochs": args.epochs, "rounds": args.rounds, "cpus": os.cpu_count(), "cases": {}}
    for case in cases:
        new, base = (statistics.median(times[case][n]) for n in ("new", "baseline"))
        result["cases"][case] = {"new_s_per_epoch": new, "baseline_s_per_epoch": base, "new_vs_baseline": new / base,
                                 "runs": times[case]}
    text = json.dumps(result, indent=2)
    print(text)
    out = HERE / "results" / f"against-{args.baseline}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
