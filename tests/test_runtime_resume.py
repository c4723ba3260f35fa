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
from snn.runtime.checkpoint import CheckpointClock
from test_runtime_parity import small


def snn_cmd(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "snn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_sigkill_ends_where_an_uninterrupted_run_ends(tmp_path, data_root):
    """The example as it is, from the command line, with no checkpoint flag: checkpoints come by time."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "SNN_DATA_DIR": str(data_root)}
    # --epochs only so that it cannot finish before the kill, however fast the machine.
    proc = snn_cmd("train", EXAMPLES / "catvnoncat-2layer.json", "--epochs", 1_000_000, "--out", run_dir, "--quiet",
                   env=env)
    deadline = time.monotonic() + 120
    while checkpoint_epoch(run_dir) < 1:  # a state to wait for, not a moment
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # it really died mid-run
    killed_at = checkpoint_epoch(run_dir)
    assert killed_at >= 1

    # The resumed run goes 150 epochs past the kill; an unbroken run of as many epochs is the oracle.
    epochs = killed_at + 150
    resumed = snn_cmd("train", "--resume", run_dir, "--epochs", epochs, "--quiet", env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    whole = snn.train(EXAMPLES / "catvnoncat-2layer.json", data_root=data_root, save=False,
                      **{"training.epochs": epochs})
    model = snn.load_model(run_dir)
    np.testing.assert_allclose(model.params.flat, whole.model.params.flat, rtol=0, atol=1e-12)
    history = (run_dir / "history.csv").read_text().splitlines()[1:]
    costs = [float(line.split(",")[1]) for line in history]
    np.testing.assert_allclose(costs, [r["cost"] for r in whole.history], rtol=0, atol=1e-12)
    assert len(costs) == epochs


def test_checkpoints_come_by_time_at_a_bounded_cost():
    """The clock of a run: as often as 1% of the training allows, at least once a second apart, at most 30 s."""
    now = [0.0]
    clock = CheckpointClock(30.0, clock=lambda: now[0])
    assert not clock.due(1)
    now[0] = 1.0
    assert clock.due(1)  # nothing measured yet: the first comes after a second

    def save(seconds):
        return lambda: now.__setitem__(0, now[0] + seconds)

    clock.write(save(0.1), 1)  # a checkpoint of 0.1 s: the next one 10 s later, so it costs 1%
    assert clock.gap == pytest.approx(10.0) and clock.epoch == 1
    now[0] += 9.9
    assert not clock.due(2)
    now[0] += 0.2
    assert clock.due(2)
    clock.write(save(0.001), 2)
    assert clock.gap == 1.0  # cheap ones still come at most once a second
    clock.write(save(1.0), 3)
    assert clock.gap == 30.0  # slow ones: the bound on lost work wins
    assert clock.spent == pytest.approx(1.101)
    every = CheckpointClock(0.0, every=10, clock=lambda: now[0])
    now[0] += 1000
    assert [e for e in range(1, 31) if every.due(e)] == [10, 20, 30]  # by epochs only


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
    run = snn.train({**small(epochs=1), "runtime": {"checkpoint_seconds": 0}}, run_dir=tmp_path / "run")
    with pytest.raises(snn.SnnError, match="no checkpoint.json"):
        snn.train(run.config, run_dir=tmp_path / "run", resume=True)
    stop = CliRunner().invoke(app, ["stop", str(tmp_path / "nothing")])
    assert stop.exit_code == 2 and "not a run folder" in stop.output


def test_a_finished_run_ends_with_a_checkpoint_and_can_go_further(tmp_path):
    """By default a run's last epoch is checkpointed too: ``--resume --epochs N`` takes it on, exactly."""
    run_dir = tmp_path / "run"
    snn.train(small(epochs=3), run_dir=run_dir)
    assert checkpoint_epoch(run_dir) == 3
    further = snn.train(snn.load_config(run_dir / "config.json"), run_dir=run_dir, resume=True,
                        **{"training.epochs": 5})
    whole = snn.train(small(epochs=5), save=False)
    np.testing.assert_array_equal(further.model.params.flat, whole.model.params.flat)
    assert [r["cost"] for r in further.history] == [r["cost"] for r in whole.history]
