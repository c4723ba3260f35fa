"""Checkpoints, SIGKILL and resume, and clean stops."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import snn
from conftest import EXAMPLES
from snn.cli import app
from test_runtime_parity import small


def snn_cmd(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "snn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_sigkill_ends_where_an_uninterrupted_run_ends(tmp_path, data_root):
    cfg = json.loads((EXAMPLES / "catvnoncat-2layer.json").read_text())
    cfg["training"]["epochs"] = 1_000_000  # it cannot finish before the kill, however fast the machine
    cfg["runtime"] = {"checkpoint_every": 10}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    run_dir = tmp_path / "run"
    env = {**os.environ, "SNN_DATA_DIR": str(data_root)}
    proc = snn_cmd("train", path, "--out", run_dir, "--quiet", env=env)
    deadline = time.monotonic() + 120
    while checkpoint_epoch(run_dir) < 100:  # a state to wait for, not a moment
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # it really died mid-run
    killed_at = checkpoint_epoch(run_dir)
    assert killed_at >= 100 and killed_at % 10 == 0

    # The resumed run goes 150 epochs past the kill; an unbroken run of as many epochs is the oracle.
    epochs = killed_at + 150
    resumed = snn_cmd("train", "--resume", run_dir, "--epochs", epochs, "--quiet", env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    whole = snn.train(path, data_root=data_root, save=False, **{"training.epochs": epochs})
    model = snn.load_model(run_dir)
    np.testing.assert_array_equal(model.params.flat, whole.model.params.flat)
    history = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [float(line.split(",")[1]) for line in history] == [r["cost"] for r in whole.history]


def checkpoint_epoch(run_dir) -> int:
    try:
        return json.loads((run_dir / "checkpoint.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def test_stop_ends_cleanly_and_resume_finishes_the_same_run(tmp_path):
    cfg = {**small(epochs=12, batch_size=16), "runtime": {"granularity": "layer"}}
    run_dir = tmp_path / "run"
    runner = CliRunner()

    def stop_at_four(record):
        if record["epoch"] == 4:
            assert runner.invoke(app, ["stop", str(run_dir)]).exit_code == 0

    stopped = snn.train(cfg, run_dir=run_dir, on_epoch=stop_at_four)
    assert stopped.summary["stopped"] and stopped.summary["epochs"] == 4
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == 4
    assert not (run_dir / "STOP").exists()

    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["epochs"] == 12
    whole = snn.train(cfg, save=False)
    np.testing.assert_allclose(snn.load_model(run_dir).params.flat, whole.model.params.flat, rtol=0, atol=1e-12)


def test_stop_mid_epoch_through_the_runtime(tmp_path, monkeypatch):
    """The stop file is read before every step: a long epoch does not delay the stop."""
    from snn.runtime.engines import local

    cfg = {**small(epochs=3, batch_size=1), "runtime": {"granularity": "neuron"}}
    run_dir = tmp_path / "run"
    per_epoch = 48 * (2 * (6 + 5 + 3) + 1)
    real, calls = local.handler, []

    def stop_ten_units_into_epoch_2(event):
        calls.append(1)
        if len(calls) == per_epoch + 10:
            (run_dir / "STOP").touch()
        return real(event)

    monkeypatch.setattr(local, "handler", stop_ten_units_into_epoch_2)
    run = snn.train(cfg, run_dir=run_dir)
    assert run.summary["stopped"] and run.summary["epochs"] == 1
    assert per_epoch < run.summary["invocations"] < per_epoch + 48  # it stopped at the next step of epoch 2
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == 1


def test_resume_needs_a_checkpoint(tmp_path):
    run = snn.train(small(epochs=1), run_dir=tmp_path / "run")
    with pytest.raises(snn.SnnError, match="no checkpoint.json"):
        snn.train(run.config, run_dir=tmp_path / "run", resume=True)
    stop = CliRunner().invoke(app, ["stop", str(tmp_path / "nothing")])
    assert stop.exit_code == 2 and "not a run folder" in stop.output
