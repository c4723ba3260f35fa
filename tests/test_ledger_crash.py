"""The invocation ledger after any crash: killed at many points (and once on a full disk), then resumed, a run's
``invocations.csv`` equals an uninterrupted run's, row for row, and so does what ``snn cost`` makes of it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

import snn
from snn.cost import lambda_cost
from snn.errors import SnnError
from snn.runtime.ledger import read_ledger
from snn.trace import load_records
from test_runtime_parity import small

KILLS = 20
TIMINGS = ("worker", "sent", "start", "end", "wait", "load", "compute", "store_write", "merge", "duration")


def neuron_run(epochs: int = 10) -> dict:
    """Three steps an epoch, every neuron a function; no hedges, so that every run makes the same deliveries."""
    cfg = small(epochs=epochs, batch_size=16)
    cfg["runtime"] = {"granularity": "neuron", "checkpoint_every": 2, "checkpoint_seconds": 0.2, "hedge_factor": 0}
    return cfg


def rows(run_dir: Path) -> list[tuple]:
    """The ledger without its timings, in a fixed order (units of a stage finish in any order)."""
    kept = [tuple((k, v) for k, v in sorted(r.items()) if k not in TIMINGS) for r in load_records(run_dir)]
    return sorted(kept, key=repr)


def cents(run_dir: Path) -> int:
    wall = json.loads((run_dir / "summary.json").read_text())["wall_seconds"]
    return round(lambda_cost(load_records(run_dir), wall).total_usd * 100)


def killed_at(cfg: dict, run_dir: Path, replace_call: int, after: bool) -> int:
    """Train in a child process that dies (as with kill -9: no handler, no cleanup) at its ``replace_call``-th
    rename of a file into the run folder, just before or just after it; the child's exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            real, calls = os.replace, [0]

            def dying_replace(src, dst, **kw):
                calls[0] += 1
                if calls[0] == replace_call and not after:
                    os._exit(137)
                real(src, dst, **kw)
                if calls[0] == replace_call:
                    os._exit(137)

            os.replace = dying_replace
            snn.train(cfg, run_dir=run_dir)
        except BaseException:  # noqa: BLE001 - reported to the parent by the exit status
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def renames(cfg: dict, run_dir: Path) -> int:
    """How many renames an uninterrupted run makes into its folder."""
    real, calls = os.replace, [0]

    def counting(src, dst, **kw):
        calls[0] += 1
        real(src, dst, **kw)

    os.replace = counting
    try:
        snn.train(cfg, run_dir=run_dir)
    finally:
        os.replace = real
    return calls[0]


def finish(cfg: dict, run_dir: Path) -> None:
    """What a user does after the crash: resume, or train again when no checkpoint was written."""
    if (run_dir / "summary.json").exists():
        return
    if (run_dir / "checkpoint.json").exists():
        snn.train(snn.load_config(run_dir / "config.json"), run_dir=run_dir, resume=True)
    else:
        snn.train(cfg, run_dir=run_dir, force=True)


def test_a_run_killed_at_any_of_20_points_and_resumed_has_the_uninterrupted_ledger(tmp_path):
    cfg = neuron_run()
    whole = tmp_path / "whole"
    n = renames(cfg, whole)
    expected, expected_cents = rows(whole), cents(whole)
    assert {r["step"] for r in read_ledger(whole / "invocations.csv")} == set(range(10 * 3))
    # Spread over the run's length, each point once before and once after its rename.
    points = sorted({(max(1, round((i + 0.5) * (n - 1) / KILLS)), i % 2 == 1) for i in range(KILLS)})
    assert len(points) == KILLS
    unfinished = 0
    for k, after in points:
        run_dir = tmp_path / f"kill-{k}-{'after' if after else 'before'}"
        assert killed_at(cfg, run_dir, k, after) == 137
        unfinished += not (run_dir / "summary.json").exists()
        finish(cfg, run_dir)
        assert rows(run_dir) == expected, f"killed at rename {k} ({'after' if after else 'before'})"
        assert cents(run_dir) == expected_cents
        np.testing.assert_array_equal(snn.load_model(run_dir).params.flat, snn.load_model(whole).params.flat)
        shutil.rmtree(run_dir)
    assert unfinished >= KILLS - 2  # the kills really landed mid-run


@contextlib.contextmanager
def small_disk(size: str):
    """A tmpfs of ``size``, mounted for the test and unmounted after it (CI runs as root)."""
    where = Path("/tmp") / f"snn-full-disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], check=True)
    finally:
        where.rmdir()


def test_a_full_disk_ends_the_run_in_one_line_and_the_resumed_ledger_is_the_uninterrupted_one(tmp_path):
    cfg = neuron_run(epochs=40)
    whole = tmp_path / "whole"
    snn.train(cfg, run_dir=whole)
    full = sum(p.stat().st_size for p in whole.iterdir())
    # Room for the run's first files and checkpoints, not for all its ledger (rewritten beside the old one).
    with small_disk(f"{full // 2}") as disk:
        run_dir = disk / "run"
        with pytest.raises(SnnError) as failed:
            snn.train(cfg, run_dir=run_dir)
        message = str(failed.value)
        assert "No space left on device" in message and str(run_dir) in message
        assert "\n" not in message and "--resume" in message
        checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
        assert f"checkpoint of epoch {checkpoint['epoch']} is intact" in message
        assert not list(run_dir.glob(".*.part"))  # no half-written file left behind
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space again
        snn.train(snn.load_config(run_dir / "config.json"), run_dir=run_dir, resume=True)
        assert rows(run_dir) == rows(whole)
        assert cents(run_dir) == cents(whole)
