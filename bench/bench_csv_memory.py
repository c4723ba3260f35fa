"""Peak memory and time of reading a CSV: ``snn predict MODEL rows.csv`` and a training CSV's ``load_dataset``.

Each measurement is a child process of its own, which reports its own peak resident
memory (``VmHWM`` of ``/proc/self/status``, as it exits: a child's ``ru_maxrss`` would count
the parent's memory, which it starts as a copy of). The files hold 8 numeric columns, of
4-decimal numbers (``-0.6143``) or of one digit each (the most numbers a MiB can hold), with
a header; a training CSV adds a label, a class name (``?label=species``) or, numbers only,
a 0/1 label last. Each is compared with the size of its numbers (rows x numeric columns x 8
bytes) and with the same command on a one-row file (the constant: Python, NumPy, snn, the
model). Prints one JSON object and saves it to ``bench/results/csv_memory.json``. Not a test;
``tests/test_csv_hostile.py`` makes the same measurement at 16 MiB.

    python bench/bench_csv_memory.py [--sizes 1 16 64] [--cells decimals digits]
        [--out bench/results/csv_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COLUMNS = 8
KINDS = ("predict", "train-labelled", "train-numbers")
CELLS = ("decimals", "digits")


def write_table(path: Path, mib: float, kind: str, seed: int = 0, cells: str = "decimals") -> int:
    """A CSV of ``kind``'s layout, of at most ``mib`` MiB (less by a block at most) but of one block at least;
    returns its rows. Eight blocks of 4096 random rows are written over and over: reading them costs what
    reading as many distinct rows does."""
    names = [f"f{j}" for j in range(COLUMNS)]
    header = {"predict": names, "train-labelled": [*names, "species"], "train-numbers": names}[kind]
    blocks = [_block(np.random.default_rng([seed, k]).normal(size=(4096, COLUMNS)), kind, cells) for k in range(8)]
    rows = 0
    with open(path, "w", newline="") as f:
        f.write(",".join(header) + "\n")
        while not rows or f.tell() + len(blocks[rows // 4096 % len(blocks)]) <= mib * (1 << 20):
            f.write(blocks[rows // 4096 % len(blocks)])
            rows += 4096
    return rows


def _block(x: np.ndarray, kind: str, cells: str) -> str:
    digits = (np.abs(x) * 4).astype(int) % 10
    cells = digits.astype(str).tolist() if cells == "digits" else [[f"{v:.4f}" for v in row] for row in x.tolist()]
    if kind == "train-labelled":
        cells = [[*row, "ab"[int(v > 0)]] for row, v in zip(cells, x[:, 0])]
    elif kind == "train-numbers":  # the label, a class 0/1, is the last of the 8 columns
        cells = [[*row[:-1], str(int(v > 0))] for row, v in zip(cells, x[:, 0])]
    return "".join(",".join(row) + "\n" for row in cells)


def numeric_columns(kind: str) -> int:
    return COLUMNS  # predict: 8 features; labelled: 8 features (and a text label); numbers: 7 and the label


# Run first in the child: as it exits, it writes its peak resident memory as the last line of stderr.
REPORT_PEAK = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('\\n' + next(line for line in "
               "open('/proc/self/status') if line.startswith('VmHWM')) + '\\n'))")


def command(kind: str, path: Path, model: Path) -> list[str]:
    """The child's command line: ``snn predict`` as its console script runs it, or a training CSV's load."""
    if kind == "predict":
        argv = ["snn", "predict", str(model), str(path), "--json"]
        run = f"sys.argv = {argv!r}; from snn.cli import main; main()"
    else:
        spec = f"csv:{path}" + ("?label=species" if kind == "train-labelled" else "")
        run = f"from snn.data import load_dataset; load_dataset({spec!r})"
    return [sys.executable, "-c", f"{REPORT_PEAK}; {run}"]


def peak(cmd: list[str]) -> tuple[int, float]:
    """The child's peak resident memory in bytes, and its seconds; its output is thrown away."""
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    kilobytes = int(done.stderr.split()[-2])  # "VmHWM:  123456 kB"
    return kilobytes * 1024, seconds


def small_model(folder: Path) -> Path:
    """A table model that knows its 8 features' names, trained for a few epochs on 256 rows."""
    import snn

    path = folder / "train.csv"
    write_table(path, 0.001, "train-labelled")
    cfg = {"name": "bench", "data": {"dataset": f"csv:{path}?label=species"},
           "network": {"layers": [{"units": 8, "activation": "relu"}, {"units": 2, "activation": "softmax"}]},
           "training": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "adam", "learning_rate": 0.01}}}
    return snn.train(cfg, run_dir=folder / "run").run_dir


def measure(kind: str, mib: float, folder: Path, model: Path, cells: str = "decimals") -> dict:
    """One kind at one size: its peak against the one-row file's, and against its numbers' bytes."""
    base_file, path = folder / f"{kind}-base.csv", folder / f"{kind}-{mib}.csv"
    base_file.write_text({"predict": "f0,f1,f2,f3,f4,f5,f6,f7\n" + ",".join(["0.5"] * 8) + "\n",
                          "train-labelled": "f0,f1,f2,f3,f4,f5,f6,f7,species\n" + "0,1,2,3,4,5,6,7,a\n" * 4
                          + "0,1,2,3,4,5,6,7,b\n" * 4,
                          "train-numbers": "0,1,2,3,4,5,6,0\n" * 4 + "0,1,2,3,4,5,6,1\n" * 4}[kind])
    rows = write_table(path, mib, kind, cells=cells)
    base, _ = peak(command(kind, base_file, model))
    top, seconds = peak(command(kind, path, model))
    numbers = rows * numeric_columns(kind) * 8
    return {"kind": kind, "cells": cells, "file_mib": round(path.stat().st_size / (1 << 20), 2), "rows": rows,
            "numbers_bytes": numbers, "baseline_rss_bytes": base, "peak_rss_bytes": top,
            "above_baseline_per_numbers": round((top - base) / numbers, 3), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 16, 64], help="file sizes in MiB")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--cells", nargs="+", default=["decimals"], choices=CELLS,
                        help="decimals: -0.6143; digits: one digit a cell, the most numbers a MiB can hold")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "csv_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = small_model(folder)
        results = [measure(kind, mib, folder, model, cells) for cells in args.cells for kind in args.kinds
                   for mib in args.sizes]
    report = {"command": " ".join(["python", "bench/bench_csv_memory.py", *sys.argv[1:]]),
              "conditions": {"python": platform.python_version(), "numpy": np.__version__,
                             "machine": platform.machine(), "cpus": os.cpu_count(),
                             "columns": COLUMNS, "cells": {"decimals": "-0.6143", "digits": "7"},
                             "peak": "VmHWM of the child's /proc/self/status, as it exits",
                             "baseline": "the same command on a one-row file"},
              "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
