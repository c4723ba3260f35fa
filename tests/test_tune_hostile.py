"""snn tune against what a user may give it (issue #20): an --out path holding URL syntax, a study.db that is
no study, choices that Python holds equal, and --resume of a study that has finished."""

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from snn.cli import app
from snn.errors import SpaceError
from snn.tune import load_space

BASE = {"name": "t", "data": {"dataset": "spiral", "validation_split": 0.2},
        "network": {"layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
        "training": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.01}}}
ONE_POINT = {"params": {"training.optimizer.learning_rate": [0.01]}}


def write(folder: Path, space: dict) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.json").write_text(json.dumps(BASE))
    (folder / "space.json").write_text(json.dumps(space))
    return folder / "base.json", folder / "space.json"


def tune(tmp_path: Path, out: Path, *args: str, space: dict = ONE_POINT):
    cfg, space_file = write(tmp_path / "files", space)
    return CliRunner().invoke(app, ["tune", str(cfg), "--space", str(space_file), "--out", str(out), *args])


def one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1
    assert expected in " ".join(result.output.split())  # as one line, however the terminal wraps it


def studies(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:  # by path: no URL in between
        return [name for (name,) in con.execute("SELECT study_name FROM studies")]


# --- --out is a path, never a URL --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["?a=b", "?mode=ro#x", "%3F%", " é"])
def test_an_out_path_with_url_syntax_is_taken_literally(tmp_path, suffix):
    other = tmp_path / "tunes" / "other_study.db"
    other.parent.mkdir()
    optuna.create_study(study_name="theirs", storage=f"sqlite:///{other}")  # someone else's study file
    out = Path(f"{other}{suffix}")
    result = tune(tmp_path, out, "--sampler", "grid", "--study", "mine")
    assert result.exit_code == 0, result.output
    assert studies(other) == ["theirs"]  # untouched
    assert studies(out / "study.db") == ["mine"] and (out / "best" / "summary.json").is_file()
    again = tune(tmp_path, out, "--sampler", "grid", "--study", "mine", "--resume")  # found again by its path
    assert again.exit_code == 0, again.output
    assert studies(other) == ["theirs"] and studies(out / "study.db") == ["mine"]


def test_an_out_path_beside_a_file_that_is_not_a_database(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n")
    result = tune(tmp_path, Path(f"{notes}?a=b"), "--sampler", "grid")
    assert result.exit_code == 0, result.output
    assert notes.read_text() == "not a database\n"


def _not_a_study(folder: Path, kind: str) -> None:
    db = folder / "study.db"
    if kind == "text":
        db.write_text("hello\n")
    elif kind == "empty":
        db.write_bytes(b"")
    elif kind == "folder":
        db.mkdir()
    elif kind == "fifo":
        os.mkfifo(db)
    elif kind == "link":
        target = folder.parent / "real"
        optuna.create_study(study_name="t", storage=f"sqlite:///{target}")
        db.symlink_to(target)
    else:  # another program's SQLite database
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE notes (x)")


@pytest.mark.parametrize("kind, message", [("text", "not a study database"), ("empty", "not an Optuna study"),
                                           ("folder", "not a regular file"), ("fifo", "not a regular file"),
                                           ("link", "not a regular file"), ("sqlite", "not an Optuna study")])
@pytest.mark.parametrize("resume", [True, False])
def test_a_study_db_that_is_no_study_is_one_line(tmp_path, kind, message, resume):
    out = tmp_path / "tune"
    out.mkdir()
    _not_a_study(out, kind)
    before = sorted(p.name for p in out.iterdir())
    one_line_error(tune(tmp_path, out, "--sampler", "grid", *(["--resume"] if resume else [])), message)
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_names_a_study_the_file_holds(tmp_path):
    out = tmp_path / "tune"
    assert tune(tmp_path, out, "--sampler", "grid", "--study", "first").exit_code == 0
    one_line_error(tune(tmp_path, out, "--sampler", "grid", "--study", "second", "--resume"),
                   "holds no study 'second', only 'first'")
    assert studies(out / "study.db") == ["first"]


# --- choices are told apart as Optuna tells them --------------------------------------------------------------------


@pytest.mark.parametrize("choices, message", [
    ([True, 1, 1.0], "true, 1 and 1.0 are equal as choices"),
    ([0, False], "0 and false are equal as choices"),
    ([2, 2.0, 3], "2 and 2.0 are equal as choices"),
    ([0.0, -0.0], "0.0 and -0.0 are equal as choices"),
    (["a", "b", "a"], '"a" is given 2 times'),
])
def test_choices_equal_in_python_are_refused_by_the_command(tmp_path, choices, message):
    result = tune(tmp_path, tmp_path / "tune", "--sampler", "grid", space={"params": {"training.seed": choices}})
    one_line_error(result, f"choices must be distinct: {message}")
    assert not (tmp_path / "tune").exists()


choice = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, -0.0, 1.0, 2.0, 0.5]), st.none(),
                   st.sampled_from(["a", "1", "true"]))


@settings(max_examples=200, deadline=None)
@given(choices=st.lists(choice, min_size=1, max_size=6), wrapped=st.booleans())
def test_accepted_choices_are_recorded_as_the_very_value_the_trial_ran_with(choices, wrapped):
    spec = {"choices": choices} if wrapped else choices
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.json"
        path.write_text(json.dumps({"params": {"training.seed": spec}}))
        try:
            dist = load_space(path).distributions["training.seed"]
        except SpaceError as e:
            assert "\n" not in str(e) and "choices must be distinct" in str(e)
            assert any(a == b for i, a in enumerate(choices) for b in choices[i + 1:])
            return
    for c in choices:  # what Optuna stores for a choice and gives back is that choice, of its own type
        back = dist.to_external_repr(dist.to_internal_repr(c))
        assert type(back) is type(c) and json.dumps(back) == json.dumps(c)


# --- --resume of a finished study ----------------------------------------------------------------------------------


def test_resume_of_a_finished_study_ends_well_and_more_trials_go_on(tmp_path):
    out = tmp_path / "tune"
    first = tune(tmp_path, out, "--trials", "1", "--pruner", "none")
    assert first.exit_code == 0, first.output
    again = tune(tmp_path, out, "--trials", "1", "--pruner", "none", "--resume")  # finished: nothing to run
    assert again.exit_code == 0 and "--force" not in " ".join(again.output.split()), again.output
    assert json.loads((out / "tune.json").read_text())["trials"] == 1  # nothing more was run
    more = tune(tmp_path, out, "--trials", "2", "--pruner", "none", "--resume")
    assert more.exit_code == 0, more.output
    summary = json.loads((out / "tune.json").read_text())
    assert summary["trials"] == 2 and (out / "best" / "summary.json").is_file()
    best = json.loads((out / "best" / "config.json").read_text())
    assert best["training"]["optimizer"]["learning_rate"] == summary["best_params"]["training.optimizer.learning_rate"]


@pytest.mark.parametrize("field, value", [("runtime.store", "redis://127.0.0.1:6379"), ("runtime.engine", "ray"),
                                          ("runtime.address", "127.0.0.1:6379"), ("data.dataset", "csv:/etc/passwd")])
def test_a_space_never_names_where_the_data_goes_or_what_runs_it(tmp_path, field, value):
    result = tune(tmp_path, tmp_path / "tune", "--sampler", "grid", space={"params": {field: [value]}})
    one_line_error(result, f"{field} names where the data goes or what runs the trials")
    assert not (tmp_path / "tune").exists()
