"""snn tune: grids, resume, failures, pruning and engines, on quick spiral trials."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from snn.config import RuntimeConfig
from snn.errors import ConfigError, SnnError
from snn.tune import INTERRUPTED, base_config, finish, load_space, open_study, plan_trials, run_study

BASE = {"name": "t", "data": {"dataset": "spiral", "validation_split": 0.2},
        "network": {"layers": [{"units": 16, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
        "training": {"epochs": 8, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.01}}}


def files(tmp_path, params, seeds=None, **training):
    base = {**BASE, "training": {**BASE["training"], **training}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"params": params, **({"seeds": seeds} if seeds else {})}))
    return tmp_path / "base.json", tmp_path / "space.yaml"


def tune(tmp_path, params, sampler="grid", trials=None, parallel=1, engine="local", pruner="median", seeds=None,
         **training):
    cfg, space_file = files(tmp_path, params, seeds, **training)
    base, space = base_config(cfg), load_space(space_file)
    study = open_study(tmp_path / "tune", "t", sampler, pruner, resume=False)
    n = plan_trials(study, space, sampler, trials)
    run_study(study, space, base, n, parallel, RuntimeConfig(engine=engine))
    return study, base


GRID = {"training.optimizer.learning_rate": [0.001, 0.01, 0.05], "network.hidden_units": [8, 32]}


def test_grid_covers_exactly_the_grid(tmp_path):
    study, base = tune(tmp_path, GRID, seeds=2, parallel=2)
    points = sorted(json.dumps(t.params, sort_keys=True) for t in study.trials)
    expected = sorted(json.dumps({"training.optimizer.learning_rate": lr, "network.hidden_units": u,
                                  "training.seed": s}, sort_keys=True)
                      for lr in GRID["training.optimizer.learning_rate"] for u in [8, 32] for s in (1, 2))
    assert points == expected and all(t.state == TrialState.COMPLETE for t in study.trials)
    summary = finish(study, base, tmp_path / "tune")
    rows = list(csv.DictReader(open(tmp_path / "tune" / "trials.csv")))
    assert len(rows) == 12 and {"best_val_cost", "best_val_accuracy", "epochs", "seconds", "training.seed"} <= set(rows[0])
    best = json.loads((tmp_path / "tune" / "best_config.json").read_text())
    assert best["network"]["layers"][0]["units"] == summary["best_params"]["network.hidden_units"]
    retrained = json.loads((tmp_path / "tune" / "best" / "summary.json").read_text())
    assert retrained["test_accuracy"] == summary["test_accuracy"]  # tested once, at the end
    history = list(csv.DictReader(open(tmp_path / "tune" / "best" / "history.csv")))
    assert min(float(r["val_cost"]) for r in history) == summary["best_val_cost"]  # retraining is exact
    for plot in ("history", "importances", "parallel"):
        assert (tmp_path / "tune" / f"{plot}.png").stat().st_size > 5000


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path):
    study, base = tune(tmp_path, {"training.optimizer.learning_rate": [0.01, -1.0, 0.02]})
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "learning_rate" in failed[0].user_attrs["error"]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
    finish(study, base, tmp_path / "tune")
    assert "fail" in (tmp_path / "tune" / "trials.csv").read_text()


def test_pruning_prunes(tmp_path):
    lrs = [0.03, 0.02, 0.01, 1e-7, 2e-7, 3e-7]  # the tiny ones are hopeless
    study, _ = tune(tmp_path, {"training.optimizer.learning_rate": lrs}, epochs=150, batch_size=16)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["training.optimizer.learning_rate"] < 1e-6 for t in pruned)
    assert all(t.user_attrs["epochs"] < 150 for t in pruned)


def test_random_search_and_its_errors(tmp_path):
    study, _ = tune(tmp_path, {"training.optimizer.learning_rate": {"low": 0.001, "high": 0.1, "log": True},
                               "network.hidden_layers": [1, 2]}, sampler="random", trials=5, parallel=2)
    assert len(study.trials) == 5 and all(0.001 <= t.params["training.optimizer.learning_rate"] <= 0.1
                                          for t in study.trials)
    with pytest.raises(ConfigError, match="a grid needs a list of choices"):
        tune(tmp_path / "g", {"training.optimizer.learning_rate": {"low": 0.001, "high": 0.1}})
    with pytest.raises(SnnError, match="already holds a study"):
        open_study(tmp_path / "tune", "t", "random", "median", resume=False)
    cfg, _ = files(tmp_path / "noval", GRID)
    raw = json.loads(cfg.read_text())
    raw["data"]["validation_split"] = 0
    cfg.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="selects by validation cost"):
        base_config(cfg)


def test_trials_give_identical_results_on_every_engine(tmp_path, engine):
    grid = {"training.optimizer.learning_rate": [0.01, 0.05], "network.hidden_units": [8, 16]}
    reference, _ = tune(tmp_path / "ref", grid, parallel=2)
    study, _ = tune(tmp_path / engine, grid, parallel=2, engine=engine)
    value = lambda s: {json.dumps(t.params, sort_keys=True): t.value for t in s.trials}  # noqa: E731
    assert value(study) == value(reference)


def test_resume_after_a_kill_runs_only_what_is_left(tmp_path):
    cfg, space = files(tmp_path, GRID, seeds=2, epochs=150)
    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "snn", "tune", str(cfg), "--space", str(space), "--sampler", "grid",
           "--out", str(out), "--pruner", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done_before = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if (out / "study.db").exists():
            try:
                study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'study.db'}")
                done_before = [t for t in study.trials if t.state == TrialState.COMPLETE]
            except Exception:  # noqa: BLE001 - the database may be mid-creation
                continue
            if len(done_before) >= 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 3 <= len(done_before) < 12
    finished = {t.number: t.params for t in done_before}

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    keys = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(complete) == 12 and len(set(keys)) == 12  # every point once: nothing finished ran again
    for number, params in finished.items():
        assert study.trials[number].state == TrialState.COMPLETE and study.trials[number].params == params
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["error"] == INTERRUPTED for t in interrupted)


def test_report_of_a_tune_folder(tmp_path):
    from typer.testing import CliRunner

    from snn.cli import app

    study, base = tune(tmp_path, GRID)
    finish(study, base, tmp_path / "tune")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "tune")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "tune" / "report.html").read_text()
    for section in ("summary", "history", "importances", "parallel", "trials"):
        assert f'<section id="{section}">' in page
    assert page.count("data:image/png;base64,") == 3
