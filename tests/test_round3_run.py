"""Round three of hostile and unlucky inputs, for the run itself: files that are not regular files, --force, a
unit that chaos delays past its timeout, a stop while a stage waits, and the command line's own checks (a scheduler's
SIGTERM is tested beside Ctrl-C, in test_run_safety.py)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.errors import FileKindError, SnnError
from snn.files import write_json, write_text
from snn.runfolder import is_running
from test_runtime_parity import small


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---- files, paths and what they may name


def not_regular(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a socket, a folder and a link to a device, each where a file would go."""
    fifo, sock, folder, device = (tmp_path / n for n in ("fifo", "sock", "folder", "stdout"))
    os.mkfifo(fifo)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    folder.mkdir()
    device.symlink_to("/dev/null")
    return {"a FIFO": fifo, "a socket": sock, "a folder": folder, "a character device": device}


def test_no_writer_replaces_what_is_not_a_regular_file(tmp_path):
    for kind, path in not_regular(tmp_path).items():
        mode = os.lstat(path).st_mode
        for write in (lambda p: write_text(p, "x"), lambda p: write_json(p, {"a": 1})):
            with pytest.raises(FileKindError, match=kind):
                write(path)
        assert os.lstat(path).st_mode == mode  # still what it was
    assert not list(tmp_path.glob(".*.part"))


def test_export_refuses_a_device_and_never_replaces_it(tmp_path):
    run_dir = tmp_path / "run"
    snn.train(small(epochs=1), run_dir=run_dir)
    for target in ("/dev/null", "/dev/full"):
        before = os.stat(target)
        result = cli("export", run_dir, "--format", "onnx", "--out", target, "--force")
        assert result.exit_code == 2 and "not a regular file" in result.output, result.output
        after = os.stat(target)
        assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)
        assert "Wrote" not in result.output


def test_force_removes_the_old_runs_report_and_onnx_file(tmp_path):
    run_dir = tmp_path / "run"
    snn.train(small(epochs=1), run_dir=run_dir)
    assert cli("export", run_dir, "--format", "onnx").exit_code == 0
    assert cli("report", run_dir).exit_code == 0
    assert (run_dir / "model.onnx").exists() and (run_dir / "report.html").exists()
    assert list((run_dir / "report").glob("*.png"))
    mine = run_dir / "notes.txt"  # not snn's: never removed
    mine.write_text("keep me")
    snn.train(small(epochs=2), run_dir=run_dir, force=True)
    assert not (run_dir / "model.onnx").exists() and not (run_dir / "report.html").exists()
    assert not (run_dir / "report").exists()
    assert mine.read_text() == "keep me"


# ---- waits and signals


def test_a_one_unit_stage_that_chaos_delays_is_hedged_and_retried_not_waited_for(tmp_path):
    """Every stage at layer granularity of this network is one unit, on the local engine with the memory store."""
    delay = 10.0  # seconds: the run's end waits for the delayed deliveries to record them
    cfg = small(epochs=3)
    cfg["runtime"] = {"granularity": "layer", "unit_timeout": 2,
                      "chaos": f"delay=0.2,delay_s={delay:g},seed=1"}
    run = snn.train(cfg, save=False)
    reference = snn.train(small(epochs=3), save=False)
    assert [r["cost"] for r in run.history] == pytest.approx([r["cost"] for r in reference.history], abs=1e-12)
    assert run.summary["speculative_won"] + run.summary["lost_and_retried"] >= 1
    # Not a race: without a copy or a retry, each delayed unit alone holds its epoch for the whole delay. The run's end
    # waits for the late deliveries, so that what they did (and would bill) is on the ledger.
    assert run.history[-1]["seconds"] < delay / 2
    late = [r for r in run.ledger.records if r["status"] == "ok" and r["end"] - r["start"] >= delay]
    assert late and len(late) == run.ledger.counts["injected_delay"]


def test_a_stop_ends_a_stage_whose_units_are_all_lost(tmp_path):
    """drop=0.9, no hedges: almost every delivery is lost, and only the 60 s unit timeout would send it again.
    A stop (as `snn stop` asks for it) is heard while the stage waits."""
    out = tmp_path / "run"
    cfg = {**small(epochs=5), "runtime": {"granularity": "layer", "chaos": "drop=0.9,seed=2", "unit_timeout": 60,
                                          "max_retries": 1000, "hedge_factor": 0}}

    def stop_once_running():
        deadline = time.monotonic() + 60
        while not (out / "runtime.json").exists() and time.monotonic() < deadline:  # the run has begun
            time.sleep(0.01)
        (out / "STOP").touch()

    asker = threading.Thread(target=stop_once_running)
    started = time.monotonic()
    asker.start()
    with pytest.raises(SnnError, match="before its first epoch ended"):
        snn.train(cfg, run_dir=out)
    asker.join()
    assert time.monotonic() - started < 30  # well inside the unit timeout it would have waited for


# ---- one line for every expected error, nothing taken silently


def write_config(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("entries", [0, -5])
def test_gradcheck_takes_a_positive_number_of_entries(tmp_path, entries):
    result = cli("gradcheck", write_config(tmp_path, small(epochs=1)), "--entries", entries)
    assert result.exit_code == 2 and "Traceback" not in result.output and "--entries" in result.output


def test_a_diverging_run_says_so_in_one_line_without_numpys_warnings(tmp_path):
    cfg = small(epochs=5)
    cfg["training"]["optimizer"] = {"name": "gd", "learning_rate": 1e300}
    result = cli("train", write_config(tmp_path, cfg), "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "diverged" in lines[0] and "RuntimeWarning" not in result.output


@pytest.mark.parametrize("runtime, said", [({"address": "127.0.0.1:6379"}, "address with engine ray only"),
                                           ({"chaos": "dup=0.5,dup=0.6"}, "dup is given twice")])
def test_settings_that_would_be_ignored_are_refused(tmp_path, runtime, said):
    result = cli("train", write_config(tmp_path, {**small(epochs=1), "runtime": runtime}), "--out", tmp_path / "r")
    assert result.exit_code == 2 and said in result.output, result.output
    assert not (tmp_path / "r" / "summary.json").exists()


def test_stop_with_a_malformed_runtime_json_stops_and_says_so_as_a_note(tmp_path):
    out = tmp_path / "run"
    cfg = {**small(epochs=100_000, batch_size=16), "runtime": {"granularity": "layer", "store": "memory"}}
    done = []
    trainer = threading.Thread(target=lambda: done.append(snn.train(cfg, run_dir=out)))
    trainer.start()
    deadline = time.monotonic() + 60
    while not ((out / "runtime.json").exists() and is_running(out)):
        assert time.monotonic() < deadline and trainer.is_alive()
        time.sleep(0.01)
    (out / "runtime.json").write_text("{not json")
    result = cli("stop", out)
    trainer.join(timeout=60)
    assert result.exit_code == 0 and "note:" in result.output and "error" not in result.output, result.output
    assert done and done[0].summary["stopped"]


def test_an_estimator_whose_fit_diverges_raises_a_value_error():
    import numpy as np

    from snn.sklearn import SNNRegressor

    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match="diverged"):
        SNNRegressor(hidden_layer_sizes=(4,), epochs=5, learning_rate=1e300).fit(X, X.sum(axis=1))


def test_stop_writes_only_to_the_store_the_run_config_names_or_one_on_this_machine(tmp_path):
    from snn.cli import _reachable_store

    (tmp_path / "config.json").write_text(json.dumps({"runtime": {"store": "redis://cache.internal:6379/0"}}))
    assert _reachable_store("redis://cache.internal:6379/0", tmp_path)  # the run's own
    assert _reachable_store("redis://127.0.0.1:41234", tmp_path)  # an embedded Valkey
    assert _reachable_store("memory://abc", tmp_path)
    for elsewhere in ("redis://192.0.2.1:6379", "rediss://user:pw@cache.internal.evil:6379", "redis://[2001:db8::1]:1"):
        assert not _reachable_store(elsewhere, tmp_path)
    (tmp_path / "config.json").write_text("[not a config")
    assert not _reachable_store("redis://cache.internal:6379/0", tmp_path)


# ---- found by an adversarial pass over the fixes above


def test_report_never_writes_through_a_linked_figure_folder(tmp_path):
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    snn.train(small(epochs=1), run_dir=run_dir)
    outside.mkdir()
    (outside / "cost.png").write_text("precious")
    (run_dir / "report").symlink_to(outside)
    result = cli("report", run_dir)
    assert result.exit_code == 2 and "not a folder of the run's own" in result.output, result.output
    assert [p.name for p in outside.iterdir()] == ["cost.png"] and (outside / "cost.png").read_text() == "precious"


@pytest.mark.parametrize("name", ["model.json", "model.safetensors", "summary.json", "checkpoint-3.safetensors"])
def test_export_never_writes_over_the_models_own_files(tmp_path, name):
    run_dir = tmp_path / "run"
    snn.train(small(epochs=1), run_dir=run_dir)
    target = run_dir / name
    before = target.read_bytes() if target.exists() else None
    result = cli("export", run_dir, "--format", "onnx", "--out", target, "--force")
    assert result.exit_code == 2 and "one of the model's own files" in result.output, result.output
    assert (target.read_bytes() if target.exists() else None) == before
    assert cli("info", run_dir).exit_code == 0


def test_force_checks_every_run_file_before_it_removes_any(tmp_path):
    run_dir = tmp_path / "run"
    snn.train(small(epochs=1), run_dir=run_dir)
    (run_dir / "history.csv").unlink()
    (run_dir / "history.csv").mkdir()
    result = cli("train", write_config(tmp_path, small(epochs=1)), "--out", run_dir, "--force", "--quiet")
    assert result.exit_code == 2 and "is a folder, not a regular file" in result.output, result.output
    assert (run_dir / "summary.json").exists() and (run_dir / "model.json").exists()  # nothing was removed
