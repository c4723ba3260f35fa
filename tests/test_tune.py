"""snn tune: grids, resume, failures, pruning and engines, on quick spiral trials."""

import csv
import json
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from snn.config import RuntimeConfig
from snn.errors import ConfigError, SnnError, SpaceError
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
    study, base = tune(tmp_path, GRID, seeds=2, parallel=2, pruner="none")  # all complete, however they interleave
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
    # No pruner: with two trials at a time, whether the fourth is pruned would depend on which
    # trials happened to finish first, a race between engines rather than a difference of results.
    reference, _ = tune(tmp_path / "ref", grid, parallel=2, pruner="none")
    study, _ = tune(tmp_path / engine, grid, parallel=2, engine=engine, pruner="none")
    value = lambda s: {json.dumps(t.params, sort_keys=True): t.value for t in s.trials}  # noqa: E731
    assert value(study) == value(reference)


def test_resume_after_an_interruption_runs_only_what_is_left(tmp_path):
    """A killed tuner leaves finished trials, trials still RUNNING and enqueued points WAITING in study.db.

    That state is made here with the real functions, at a chosen point rather than at
    the moment a signal lands, and the real command resumes from it.
    """
    cfg, space_file = files(tmp_path, GRID, seeds=2)
    out = tmp_path / "tune"
    base, space = base_config(cfg), load_space(space_file)
    study = open_study(out, "t", "grid", "none", resume=False)
    assert plan_trials(study, space, "grid", None) == 12
    run_study(study, space, base, 5, 2, RuntimeConfig())  # five trials finish ...
    running = [study.ask(space.distributions) for _ in range(2)]  # ... two were under way when the tuner died
    running[0].report(0.9, 1)
    before = {t.number: (t.params, t.value) for t in study.trials if t.state == TrialState.COMPLETE}
    states = [t.state for t in study.trials]
    assert len(before) == 5 and states.count(TrialState.RUNNING) == 2 and states.count(TrialState.WAITING) == 5
    left = ({json.dumps(p, sort_keys=True) for p in space.grid()}
            - {json.dumps(params, sort_keys=True) for params, _ in before.values()})

    from typer.testing import CliRunner

    from snn.cli import app

    result = CliRunner().invoke(app, ["tune", str(cfg), "--space", str(space_file), "--sampler", "grid",
                                      "--out", str(out), "--pruner", "none", "--resume"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    keys = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(complete) == 12 and len(set(keys)) == 12  # every point once: nothing finished ran again
    for number, (params, value) in before.items():
        assert (study.trials[number].params, study.trials[number].value) == (params, value)
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 7 and all(t.user_attrs["error"] == INTERRUPTED for t in interrupted)
    rerun = {json.dumps(t.params, sort_keys=True) for t in complete if t.number >= len(before) + 7}
    assert rerun == left  # exactly the interrupted points ran again
    assert json.loads((out / "tune.json").read_text())["completed"] == 12


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


BAD_SPACES = [
    ({"params": {"training.optimizer.learning_rate": {"low": 0.1, "high": 0.01}}}, "low 0.1 is above high 0.01"),
    ({"params": {"training.optimizer.learning_rate": {"low": 0, "high": 0.1, "log": True}}},
     "a log range needs low > 0"),
    ({"params": {"training.batch_size": {"low": 32, "high": 256, "step": 0}}}, r"step: Input should be greater than 0"),
    ({"params": {"training.batch_size": {"low": 32, "high": 100, "step": 32}}},
     "high - low must be a multiple of step"),
    ({"params": {"training.optimizer.learning_rate": {"low": 0.01, "high": 0.1, "log": True, "step": 0.01}}},
     "either log or step"),
    ({"params": {"training.epochs": []}}, "at least 1 item"),
    ({"params": {"training.epochs": {"choices": [1, [2]]}}}, "a choice is a number"),
    ({"params": {"training.epochs": [1, 1]}}, "choices must be distinct"),
    ({"params": {"training.epochs": 3}}, "valid dictionary"),
    ({"params": {"training.epochs": [1, 2]}, "seeds": 0}, "seeds: Input should be greater than 0"),
    ({"params": {"training.epochs": [1, 2]}, "seeds": True}, "seeds: Input should be a valid integer"),
    ({"params": {"training.epochs": [1, 2]}, "extra": 1}, "extra: Extra inputs are not permitted"),
    ({"params": {}}, "params: Dictionary should have at least 1 item"),
    ({"params": {"training.optimizer.lr": [0.1]}}, r"'training.optimizer.lr' is not a config field .*allowed: "
                                                    r"training.optimizer.name, training.optimizer.learning_rate"),
    ({"params": {"training.epochs.x": [1]}}, "training.epochs has no 'x'"),
    ({"params": {"../x": [1]}}, "is not a config field"),
    ([1, 2], "Input should be a valid dictionary"),
]


@pytest.mark.parametrize("doc, message", BAD_SPACES)
def test_a_bad_space_is_one_line_naming_the_file_and_field(tmp_path, doc, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpaceError, match=message) as e:
        load_space(path)
    assert str(e.value).startswith(f"space file {path}:") and "\n" not in str(e.value)


def test_a_space_file_is_plain_and_bounded(tmp_path):
    aliases = tmp_path / "space.yaml"
    aliases.write_text("lrs: &lrs [0.1, 0.2]\nparams: {training.optimizer.learning_rate: *lrs}\n")
    with pytest.raises(SpaceError, match="YAML aliases"):
        load_space(aliases)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"params": {"training.epochs": list(range(100_000))}}))
    with pytest.raises(SpaceError, match="larger than"):
        load_space(huge)
    _, space = files(tmp_path, GRID)
    for seeds in (0, -3, 10**6):
        with pytest.raises(SpaceError, match=f"--seeds {seeds}; allowed: 1 to"):
            load_space(space, seeds)
    big = {f"training.optimizer.{n}": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
           for n in ("learning_rate", "beta1", "beta2", "epsilon")}
    _, space = files(tmp_path / "big", {**big, "training.epochs": [1, 2]})
    with pytest.raises(SpaceError, match="the grid has 20000 points"):
        load_space(space).grid()


space_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False),
              st.text(max_size=12),
              st.sampled_from(["training.epochs", "network.hidden_units", "low", "high", "step", "log", "choices"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["low", "high", "step", "log", "log_float", "choices", "params", "seeds", "x"]), inner,
        max_size=4)), max_leaves=12)
space_docs = st.one_of(space_values, st.fixed_dictionaries({"params": st.dictionaries(st.sampled_from(
    ["training.epochs", "training.optimizer.learning_rate", "network.hidden_units", "training.x", ""]), space_values,
    max_size=3)}, optional={"seeds": space_values}))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(space_docs)
def test_random_space_files_are_a_space_error_or_a_space(doc):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.json"
        path.write_text(json.dumps(doc))
        try:
            space = load_space(path)
        except SpaceError as e:
            assert str(e).startswith(f"space file {path}") or str(e).startswith(str(path)), str(e)
            assert "\n" not in str(e)
            return
        assert set(space.distributions) - {"training.seed"} == set(doc["params"])


@pytest.mark.parametrize("name", ["../../x", "ABSOLUTE", "a/b", "..", "", "x\x00y", "x\ny", "x\n", "x" * 101])
def test_a_study_name_is_never_a_path(tmp_path, name):
    name = name.replace("ABSOLUTE", str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="study name"):
        open_study(tmp_path / "tunes" / name, name, "random", "median", resume=False)
    assert list(tmp_path.iterdir()) == []


def test_the_command_refuses_a_study_name_that_is_a_path(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from snn.cli import app

    cfg, space = files(tmp_path / "files", GRID)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, ["tune", str(cfg), "--space", str(space), "--study", "../../x"])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists() and not (work / "tunes").exists()
