"""Real tables: CSV files with a header and a named label column, and standardisation.

The oracle for what standardisation buys is scikit-learn's ``MLPClassifier`` behind its own
``StandardScaler``: the same architecture, optimizer, learning rate, batch size and epochs,
trained and tested on the same CSV rows in the same test.
"""

import json
import re
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import snn
from conftest import EXAMPLES
from snn.cli import app
from snn.data import Dataset, Preprocessing, load_dataset
from snn.data.tabular import csv_options
from snn.errors import ConfigError, DataError, ModelFileError
from snn.service import create_app
from snn.sklearn import SNNClassifier

QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SPECIES = np.array(["alpha", "beta", "gamma"])
NET = [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}]


def write_csv(path: Path, x, labels, names=None) -> Path:
    names = names or [f"f{j}" for j in range(np.shape(x)[1])]
    rows = [",".join([*map(repr, row), str(label)]) for row, label in zip(np.asarray(x).tolist(), labels)]
    path.write_text("\n".join([",".join([*names, "species"]), *rows]) + "\n")
    return path


def config(dataset: str, layers=NET, epochs=5, **data) -> dict:
    return {"name": "t", "data": {"dataset": dataset, **data}, "network": {"layers": layers},
            "training": {"epochs": epochs, "batch_size": 16, "optimizer": {"name": "adam", "learning_rate": 0.01}}}


def refused(spec: str, match: str) -> str:
    with pytest.raises(DataError, match=match) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


# --- what the issue calls done ---------------------------------------------------------------------------------------

# Measured over seeds 0..19 (6000 rows, 4000 to train, 2000 to test, 60 epochs): snn standardised
# against MLPClassifier differed by 0.005 at most (mean |difference| 0.002); snn on the raw columns
# trailed snn standardised by 0.031 to 0.48 (median 0.16). Seed 0: 0.9825 and 0.9815, raw 0.7265.
DONE_SEED, DONE_MARGIN = 0, 0.02


def test_a_badly_scaled_csv_trains_as_well_as_sklearns_mlp_with_its_scaler(tmp_path):
    n, features, epochs, batch, lr, hidden = 6000, 8, 60, 64, 0.01, 32
    X, y = make_classification(n, features, n_informative=5, n_redundant=1, n_classes=3, class_sep=2.0, flip_y=0,
                               random_state=DONE_SEED)
    X = X * np.logspace(-3, 4, features)  # features from thousandths to tens of thousands
    cut = n * 2 // 3
    train = write_csv(tmp_path / "train.csv", X[:cut], SPECIES[y[:cut]])
    test = load_dataset(f"csv:{write_csv(tmp_path / 'test.csv', X[cut:], SPECIES[y[cut:]])}?label=species")
    truth = np.asarray(test.classes)[test.y_train]

    def snn_accuracy(standardize: bool) -> float:
        cfg = {"data": {"dataset": f"csv:{train}?label=species", "standardize": standardize},
               "network": {"layers": [{"units": hidden, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
               "training": {"epochs": epochs, "batch_size": batch, "seed": DONE_SEED,
                            "optimizer": {"name": "adam", "learning_rate": lr}}}
        model = snn.train(cfg, save=False).model
        assert model.classes == tuple(SPECIES)
        return float((np.asarray(model.classes)[model.predict_raw(test.x_train)] == truth).mean())

    standardised, raw = snn_accuracy(True), snn_accuracy(False)
    mlp = make_pipeline(StandardScaler(), MLPClassifier(
        (hidden,), activation="relu", solver="adam", alpha=0.0, batch_size=batch, learning_rate_init=lr,
        max_iter=epochs, shuffle=True, random_state=DONE_SEED, n_iter_no_change=epochs, tol=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # it ran max_iter epochs, as asked
        mlp.fit(X[:cut], SPECIES[y[:cut]])
    assert mlp[-1].n_iter_ == epochs
    oracle = float(mlp.score(X[cut:], SPECIES[y[cut:]]))
    seen = f"snn standardised {standardised:.4f}, snn raw {raw:.4f}, MLPClassifier {oracle:.4f}"
    print(seen)
    assert abs(standardised - oracle) <= 0.01, seen
    assert raw <= standardised - DONE_MARGIN, seen


# --- standardisation: fitted on the training split only, kept with the model, applied everywhere --------------------

def marked(x) -> np.ndarray:
    """``x`` with a first column holding each row's number, so a split's rows can be told apart."""
    return np.column_stack([np.arange(len(x)), x])


@QUICK
@given(rows=st.integers(8, 40), scale=st.floats(1e-3, 1e4), fraction=st.sampled_from([0.2, 0.25, 0.5]),
       seed=st.integers(0, 100))
def test_the_mean_and_std_come_from_the_training_split_alone(rows, scale, fraction, seed):
    rng = np.random.default_rng(seed)
    x = marked(rng.normal(3, 2, (rows, 3)) * scale)
    y = np.arange(rows) % 2
    base = Dataset("mine", x, y, ("a", "b"), Preprocessing("table", (4,)), x_test=x[:4], y_test=y[:4])
    cfg = {**config("mine", [{"units": 1, "activation": "sigmoid"}], 1, validation_split=fraction),
           "training": {"epochs": 1, "seed": seed}}
    first = snn.train(cfg, save=False, dataset=base).model.preprocessing
    split = base.with_validation(fraction, seed)
    np.testing.assert_allclose(first.mean, split.x_train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(first.std, split.x_train.std(axis=0), rtol=1e-12)
    # Other validation and test rows: the same mean and std, to the bit.
    held_out = np.isin(x[:, 0], split.x_val[:, 0])
    other = x.copy()
    other[held_out, 1:] = rng.normal(-50, 30, (held_out.sum(), 3))
    changed = replace(base, x_train=other, x_test=rng.normal(size=(4, 4)) * 1e6)
    again = snn.train(cfg, save=False, dataset=changed).model.preprocessing
    assert (again.mean, again.std) == (first.mean, first.std)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A standardised CSV model: features at 1e-2 and 1e3, labels in words, saved as a run folder."""
    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2)) * [0.01, 1000.0]
    labels = np.where(x[:, 0] * 100 + x[:, 1] / 1000 > 0, "wet", "dry")
    path = write_csv(folder / "t.csv", x, labels, ["rain (m)", "height (mm)"])
    run = snn.train(config(f"csv:{path}?label=species", [{"units": 8, "activation": "tanh"},
                                                          {"units": 1, "activation": "sigmoid"}], 30),
                    run_dir=folder / "run")
    return run, x, labels


def test_a_standardised_model_keeps_its_mean_and_std_and_applies_them(table_run):
    run, x, labels = table_run
    meta = json.loads((run.run_dir / "model.json").read_text())
    assert meta["classes"] == ["dry", "wet"]
    pre = meta["preprocessing"]
    assert pre["mean"] == pytest.approx(x.mean(axis=0)) and pre["std"] == pytest.approx(x.std(axis=0))
    model = snn.load_model(run.run_dir)
    assert model.preprocessing == run.model.preprocessing
    by_hand = (x.T - np.array(pre["mean"])[:, None]) / np.array(pre["std"])[:, None]
    np.testing.assert_allclose(model.preprocessing.columns(x), by_hand, rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(model.predict_raw(x), run.model.predict_raw(x))
    assert (np.asarray(model.classes)[model.predict_raw(x)] == labels).mean() > 0.95
    result = CliRunner().invoke(app, ["evaluate", str(run.run_dir), "--split", "train", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == run.summary["train_accuracy"] > 0.95


def test_the_service_standardises_what_it_is_sent(table_run):
    run, x, _ = table_run
    model = snn.load_model(run.run_dir)
    client = TestClient(create_app(run.run_dir), base_url="http://127.0.0.1")
    rows = x[:5]
    expected = model.class_probabilities(model.preprocessing.columns(rows)).T
    raw = model.class_probabilities(rows.T).T  # the network on unstandardised rows: not what it was trained on
    got = client.post("/predict/batch", json={"inputs": rows.tolist()}).json()
    for answer, p, unscaled in zip(got, expected, raw):
        assert [answer["probabilities"][c] for c in model.classes] == pytest.approx(p.tolist(), abs=1e-12)
        assert answer["label"] == model.classes[int(p.argmax())]
    assert not np.allclose(expected, raw, atol=1e-3)
    one = client.post("/predict", json={"input": rows[0].tolist()}).json()
    assert one["probabilities"]["wet"] == pytest.approx(float(expected[0, 1]), abs=1e-12)
    assert client.get("/model").json()["preprocessing"]["mean"] == list(model.preprocessing.mean)


def test_the_estimators_standardise_by_default_and_keep_it_when_saved(tmp_path):
    X, y = make_classification(300, 4, n_informative=3, n_redundant=0, random_state=1)
    X = X * [1e-3, 1.0, 1e2, 1e4]
    clf = SNNClassifier(epochs=40, random_state=0).fit(X, y)
    pre = clf.model_.preprocessing
    assert clf.standardize and pre.std == pytest.approx(tuple(X.std(axis=0)))
    by_hand = ((X - pre.mean) / pre.std).T
    np.testing.assert_allclose(clf.predict_proba(X), clf.model_.class_probabilities(by_hand).T, rtol=0, atol=1e-12)
    assert SNNClassifier(epochs=2, standardize=False).fit(X, y).model_.preprocessing.mean is None
    clf.save(tmp_path / "m")
    loaded = SNNClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # partial_fit goes on with the mean and std the weights were trained on, not new ones from its batch
    loaded.partial_fit(X[:10] * 5, y[:10])
    assert loaded.model_.preprocessing.mean == clf.model_.preprocessing.mean
    with pytest.raises(ValueError, match=r"data.standardize: got 'yes'; input should be a valid boolean"):
        SNNClassifier(standardize="yes").fit(X, y)


def test_images_and_the_generated_toys_keep_their_scale(tmp_path, data_root):
    toy = snn.train(config("xor", [{"units": 1, "activation": "sigmoid"}], 1), save=False)
    assert toy.model.preprocessing.mean is None  # the published spiral and xor numbers stay as they were
    assert snn.train({**config("xor", [{"units": 1, "activation": "sigmoid"}], 1, standardize=True)},
                     save=False).model.preprocessing.mean is not None
    cat = config("catvnoncat", [{"units": 1, "activation": "sigmoid"}], 1, standardize=True)
    with pytest.raises(ConfigError, match=r"data.standardize is true, but dataset 'catvnoncat' holds images "
                                          r"\(divided by 255\); allowed: true for table rows only"):
        snn.train(cat, data_root=data_root, save=False)


def test_a_model_without_mean_and_std_reads_its_inputs_exactly_as_before():
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    pre = Preprocessing("image", (4, 4, 3), 255.0)
    np.testing.assert_array_equal(pre.columns(x), np.divide(x.reshape(5, -1).T, 255.0))
    assert Preprocessing.from_json(pre.to_json()) == pre and "mean" not in pre.to_json()
    constant = Preprocessing("table", (2,)).standardized(np.array([[3.3, 1.0], [3.3, 2.0], [3.3, 4.0]]))
    assert constant.std[0] == 1.0 and constant.mean[0] == pytest.approx(3.3)  # centred, never divided by ~0
    # a float32 model's inputs are standardised in float64 first: timestamps keep their seconds
    seconds = 1.7e9 + np.arange(6.0).reshape(-1, 1)
    stamps = Preprocessing("table", (1,)).standardized(seconds)
    np.testing.assert_allclose(stamps.columns(seconds, np.float32), stamps.columns(seconds), rtol=1e-6)
    huge = Dataset("big", np.array([[1e200], [-1e200]]), np.array([0, 1]), ("a", "b"), Preprocessing("table", (1,)))
    with pytest.raises(DataError, match=r"^big: x_train: feature 1 holds values too large to standardise .*"
                                        r"help: rescale it, or set data.standardize: false$"):
        snn.train(config("big", [{"units": 1, "activation": "sigmoid"}], 1), save=False, dataset=huge)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(mean=p["mean"][:1]), r"1 means and 2 stds for 2 features; allowed: one each"),
    (lambda p: p.update(std=[1.0, 0.0]), r"preprocessing.std.1: Input should be greater than or equal to 0.0+1 "
                                         r"\(got 0.0\)"),
    (lambda p: p.update(std=[1.0, -2.0]), r"preprocessing.std.1"),
    (lambda p: p.pop("std"), r"mean and std come together, and only for a table"),
    (lambda p: p.update(kind="image", shape=[1, 2]), r"features names a table's columns; an image has none"),
    (lambda p: p.pop("features") and p.update(kind="image", shape=[1, 2]), r"mean and std come together, and only "),
    (lambda p: p.update(features=["a", "a"]), r"2 feature names for 2 features; allowed: one distinct name each"),
    (lambda p: p.update(features=["a"]), r"1 feature names for 2 features"),
    (lambda p: p.update(features=["a", " b"]), r"feature name ' b'; allowed: printable, without spaces at either end"),
    (lambda p: p.update(features=["a", "b\n"]), r"preprocessing.features.1: must be printable text.*\(got 'b\\n'\)"),
    (lambda p: p.update(mean=[1.0, "2"]), r"preprocessing.mean.1: Input should be a valid number"),
    (lambda p: p.update(mean=[1.0, 1e400]), r"model.json: "),
])
def test_a_tampered_mean_or_std_is_one_clear_error(table_run, tmp_path, change, message):
    run, _, _ = table_run
    folder = tmp_path / "m"
    run.model.save(folder)
    meta = json.loads((folder / "model.json").read_text())
    change(meta["preprocessing"])
    (folder / "model.json").write_text(json.dumps(meta).replace("Infinity", "1e400"))
    with pytest.raises(ModelFileError, match=message) as info:
        snn.load_model(folder)
    assert "\n" not in str(info.value)


# --- CSV with a header and a named label column -----------------------------------------------------------------------

def test_text_labels_become_class_names_sorted_and_a_model_keeps_them(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('"petal length","petal width",species\n1.4,0.2,"setosa"\n4.7,1.4,versicolor\n'
                    '6.0,2.5,virginica\n1.3,0.2,setosa\n4.5,1.5,versicolor\n')
    ds = load_dataset(f"csv:{path}?label=species")
    assert ds.classes == ("setosa", "versicolor", "virginica") and ds.y_train.tolist() == [0, 1, 2, 0, 1]
    np.testing.assert_array_equal(ds.x_train[:, 0], [1.4, 4.7, 6.0, 1.3, 4.5])
    assert ds.name == f"csv:{path.resolve()}?label=species" and load_dataset(ds.name).classes == ds.classes
    run = snn.train(config(ds.name), run_dir=tmp_path / "run")
    assert snn.load_model(tmp_path / "run").classes == ("setosa", "versicolor", "virginica") == run.model.classes
    # numbers as labels sort by value, not as text; the label may be any column
    path.write_text("grade,x\n10,1\n9,2\n2,3\n10,4\n")
    numbers = load_dataset(f"csv:{path}?label=grade")
    assert numbers.classes == ("2", "9", "10") and numbers.y_train.tolist() == [2, 1, 0, 2]
    assert numbers.x_train.ravel().tolist() == [1, 2, 3, 4]


def test_a_named_column_with_spaces_and_a_regression_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) * [1.0, 100.0]
    target = 3 * x[:, 0] - x[:, 1] / 50
    path = tmp_path / "r.csv"
    rows = (f"{a!r},{b!r},{t!r}\n" for (a, b), t in zip(x.tolist(), target.tolist()))
    path.write_text("a,b,price in $\n" + "".join(rows))
    spec = f"csv:{path}?label=price%20in%20%24&task=regression"
    ds = load_dataset(spec)
    assert ds.task == "regression" and ds.classes == ("price in $",) and ds.y_train.shape == (200, 1)
    cfg = config(spec, [{"units": 1, "activation": "linear"}], 200)
    run = snn.train(cfg, save=False)
    assert run.model.task == "regression" and run.model.spec.loss == "mse"
    assert run.history[-1]["cost"] < 0.01 * run.history[0]["cost"]  # linear: standardised, it is found at once
    assert load_dataset(run.summary["dataset"]).task == "regression"


@pytest.fixture(scope="module")
def price_run(tmp_path_factory):
    """A regression model of a CSV (a target in dollars, features at 1 and 100), saved as a run folder."""
    folder = tmp_path_factory.mktemp("price")
    x = np.random.default_rng(0).normal(size=(200, 2)) * [1.0, 100.0]
    target = 3 * x[:, 0] - x[:, 1] / 50
    rows = (f"{a!r},{b!r},{t!r}\n" for (a, b), t in zip(x.tolist(), target.tolist()))
    (folder / "r.csv").write_text("a,b,price in $\n" + "".join(rows))
    run = snn.train(config(f"csv:{folder / 'r.csv'}?label=price%20in%20%24&task=regression",
                           [{"units": 1, "activation": "linear"}], 200), run_dir=folder / "run")
    return run, x


def test_the_service_answers_a_regression_with_its_values_by_target(price_run):
    run, x = price_run
    client = TestClient(create_app(run.run_dir), base_url="http://127.0.0.1")
    expected = run.model.predict_proba(run.model.preprocessing.columns(x[:3]))[0]
    got = client.post("/predict/batch", json={"inputs": x[:3].tolist()})
    assert got.status_code == 200, got.text
    assert [a["values"]["price in $"] for a in got.json()] == pytest.approx(expected.tolist(), abs=1e-12)
    named = client.post("/predict", json={"input": {"b": x[0, 1], "a": x[0, 0]}}).json()  # by name, any order
    assert named == {"values": {"price in $": pytest.approx(float(expected[0]), abs=1e-12)}}
    for row, message in [({"a": 1.0}, "no value for 'b'"), ({"a": 1, "b": 2, "c": 3}, "no feature 'c'"),
                         ({"a": "x", "b": 2}, "finite numbers")]:
        answer = client.post("/predict", json={"input": row})
        assert answer.status_code == 422 and message in answer.json()["error"], answer.text
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "Values" in schema and "Prediction" not in schema


def test_snn_predict_reads_a_csv_by_its_column_names(table_run, price_run, tmp_path):
    run, x, labels = table_run
    # The columns reordered, the label's column kept: the model picks its features by name.
    path = tmp_path / "new.csv"
    path.write_text("species,height (mm),rain (m)\n" +
                    "".join(f"{lab},{b!r},{a!r}\n" for (a, b), lab in zip(x[:6].tolist(), labels)))
    result = CliRunner().invoke(app, ["predict", str(run.run_dir), str(path), "--json"])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    p = run.model.class_probabilities(run.model.preprocessing.columns(x[:6])).T
    assert [a["row"] for a in answers] == [2, 3, 4, 5, 6, 7] and {a["file"] for a in answers} == {str(path)}
    assert [a["label"] for a in answers] == [run.model.classes[k] for k in p.argmax(axis=1)]
    assert [a["probabilities"]["wet"] for a in answers] == pytest.approx(p[:, 1].tolist(), abs=1e-12)
    price, px = price_run
    (tmp_path / "p.csv").write_text("b,a\n" + "".join(f"{b!r},{a!r}\n" for a, b in px[:2].tolist()))
    result = CliRunner().invoke(app, ["predict", str(price.run_dir), str(tmp_path / "p.csv"), "--json"])
    assert result.exit_code == 0, result.output
    values = [a["values"]["price in $"] for a in json.loads(result.output)]
    assert values == pytest.approx(price.model.predict_proba(price.model.preprocessing.columns(px[:2]))[0].tolist())
    (tmp_path / "far.csv").write_text("a,b\n1,2\n1e308,-1e308\n")  # a linear output past float64's range
    result = CliRunner().invoke(app, ["predict", str(price.run_dir), str(tmp_path / "far.csv"), "--json"],
                                env={"COLUMNS": "500"})
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "far.csv:3: the input drives the network to infinity or NaN; allowed: values in the range the model " \
           "was trained on" in result.output


def test_a_csv_regression_trains_and_evaluates_from_the_command_line(tmp_path):
    x = np.random.default_rng(2).normal(size=(200, 2)) * [1.0, 100.0]
    target = 3 * x[:, 0] - x[:, 1] / 50
    (tmp_path / "r.csv").write_text("a,b,price\n" + "".join(f"{a!r},{b!r},{t!r}\n" for (a, b), t in
                                                             zip(x.tolist(), target.tolist())))
    cfg = config(f"csv:{tmp_path / 'r.csv'}?label=price&task=regression",
                 [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "linear"}], 30, validation_split=0.25)
    (tmp_path / "r.json").write_text(json.dumps(cfg))
    for flags in ([], ["--quiet"], ["--json"]):  # the progress line, too, has no accuracy to show
        folder = tmp_path / f"run{len(flags)}{''.join(flags)}"
        result = CliRunner().invoke(app, ["train", str(tmp_path / "r.json"), "--out", str(folder), *flags],
                                    env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--json"])  # no test split: the validation rows
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    model = snn.load_model(folder)
    ds = load_dataset(model.summary["dataset"]).with_validation(0.25, model.summary["split"]["seed"])
    values = model.predict_proba(model.preprocessing.columns(ds.x_val))[0]
    assert scores["split"] == "validation" and scores["examples"] == 50 and scores["targets"] == ["price"]
    assert scores["mse"] == [pytest.approx(float(np.mean((values - ds.y_val[:, 0]) ** 2)), rel=1e-12)]
    assert scores["r2"][0] > 0.9
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--split", "train", "--json"])
    assert json.loads(result.output)["examples"] == 150  # the rows it trained on, not the held-out ones
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--split", "test"], env={"COLUMNS": "500"})
    assert result.exit_code == 2 and "split 'test' is not available" in result.output
    assert "allowed: train, validation" in result.output


def test_evaluate_scores_a_classifier_on_the_rows_its_run_split_off(table_run, tmp_path):
    run, x, labels = table_run
    folder = tmp_path / "held"
    held = snn.train({**config(run.summary["dataset"], [{"units": 1, "activation": "sigmoid"}], 3,
                               validation_split=0.25)}, run_dir=folder)
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--split", "validation", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["examples"] == held.summary["n_val"] == 60
    assert answer["accuracy"] == pytest.approx(held.summary["val_accuracy"], abs=1e-12)
    meta = json.loads((folder / "model.json").read_text())
    meta["training"]["split"]["seed"] = "0"
    (folder / "model.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["evaluate", str(folder)], env={"COLUMNS": "500"})
    assert result.exit_code == 2 and "training.split" in result.output and len(result.output.splitlines()) == 1


@pytest.mark.parametrize("text, match", [
    ("height (mm)\n1\n", r"no column 'rain \(m\)' in the header \(its first row\); allowed: a header naming "
                          r"each of the model's features once \('rain \(m\), height \(mm\)'\)"),
    ("1,2\n3,4\n", r"no column 'rain \(m\)' in the header \(its first row\)"),
    ("rain (m),rain (m),height (mm)\n1,2,3\n", r"more than one column 'rain \(m\)' in the header"),
    ("rain (m),height (mm)\n1,2\n3\n", r"row 3 has 1 fields; allowed: 2, as in row 1"),
    ("rain (m),height (mm)\n1,NA\n", r"row 2, column 2 \('height \(mm\)'\): missing value \('NA'\)"),
    ("rain (m),height (mm)\n", r"no data rows under its header"),
    ("", r"no rows"),
])
def test_a_bad_csv_to_predict_is_one_line_with_exit_code_2(table_run, tmp_path, text, match):
    (tmp_path / "t.csv").write_text(text)
    result = CliRunner().invoke(app, ["predict", str(table_run[0].run_dir), str(tmp_path / "t.csv"), "--json"],
                                env={"COLUMNS": "500"})
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert re.search(match, result.output), result.output


def test_a_model_without_feature_names_takes_its_columns_in_order(tmp_path):
    x = np.random.default_rng(1).normal(size=(60, 2))
    path = tmp_path / "plain.csv"
    path.write_text("".join(f"{a!r},{b!r},{int(a > b)}\n" for a, b in x.tolist()))
    run = snn.train(config(f"csv:{path}", [{"units": 1, "activation": "sigmoid"}], 5), run_dir=tmp_path / "run")
    assert run.model.preprocessing.features is None
    (tmp_path / "rows.csv").write_text("u,v\n" + "".join(f"{a!r},{b!r}\n" for a, b in x[:3].tolist()))
    result = CliRunner().invoke(app, ["predict", str(run.run_dir), str(tmp_path / "rows.csv"), "--json"])
    assert result.exit_code == 0, result.output
    p = run.model.class_probabilities(run.model.preprocessing.columns(x[:3])).T
    assert [a["probability"] for a in json.loads(result.output)] == pytest.approx(p.max(axis=1).tolist())
    for text, message in [("1,2,3\n", "3 columns; allowed: the model's 2 features"),
                          ("0.5,x\n1,2\n", "row 1, column 2: 'x' is not a number")]:  # data, not a header: no skip
        (tmp_path / "bad.csv").write_text(text)
        result = CliRunner().invoke(app, ["predict", str(run.run_dir), str(tmp_path / "bad.csv")],
                                    env={"COLUMNS": "500"})
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_header_of_numbers_still_names_the_features(tmp_path):
    x = np.random.default_rng(3).normal(size=(60, 2))
    path = write_csv(tmp_path / "n.csv", x, np.where(x[:, 0] > 0, "up", "down"), ["0", "1"])  # pandas' default names
    run = snn.train(config(f"csv:{path}?label=species", [{"units": 1, "activation": "sigmoid"}], 3),
                    run_dir=tmp_path / "run")
    assert run.model.preprocessing.features == ("0", "1")
    result = CliRunner().invoke(app, ["predict", str(run.run_dir), str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 60


@pytest.mark.parametrize("header, match", [
    ("a,a", r"the header's column 2 \('a'\) has the name of column 1; allowed: distinct names"),
    (",a", r"the header's column 1 has no name; allowed: a name for every column; help: name it, or drop the "
           r"column \(pandas writes an unnamed index first: to_csv\(index=False\) leaves it out\)"),
    ("a," + "b" * 201, r"column 2 \('b+\.\.\.\): a name of 201 characters; allowed: 1..200 printable ones"),
])
def test_a_header_whose_names_cannot_find_the_columns_again_is_refused(tmp_path, header, match):
    (tmp_path / "t.csv").write_text(f"{header},species\n1,2,x\n3,4,y\n")
    refused(f"csv:{tmp_path / 't.csv'}?label=species", match)


def test_an_image_model_refuses_a_csv_and_a_table_row(cat_run_dir, tmp_path):
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["predict", str(cat_run_dir), str(tmp_path / "rows.csv")], env={"COLUMNS": "500"})
    assert result.exit_code == 2 and "this model takes images; allowed: PNG or JPEG files" in result.output
    answer = TestClient(create_app(cat_run_dir), base_url="http://127.0.0.1").post("/predict", json={"input": {"a": 1}})
    assert answer.status_code == 422 and "this model takes images" in answer.json()["error"]


def test_the_estimators_keep_their_columns_names_as_a_header_is_read(tmp_path):
    import pandas as pd

    X, y = make_classification(80, 2, n_informative=2, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=[" rain ", "wind"])
    folder = SNNClassifier(epochs=2, random_state=0).fit(frame, y).save(tmp_path / "m")
    assert snn.load_model(folder).preprocessing.features == ("rain", "wind")
    frame.assign(label=y).to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(folder), str(tmp_path / "rows.csv"), "--json"])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 80, result.output


@pytest.mark.parametrize("text, match", [
    ("a,b,species\n1,2,x\n3,,y\n", r"row 3, column 2 \('b'\): missing value \(''\); allowed: numbers in every column "
                                   r"but the label \('species'\); help: fill it in or drop that row"),
    ("a,b,species\n1,NA,x\n3,4,y\n", r"row 2, column 2 \('b'\): missing value \('NA'\)"),
    ("a,b,species\n1,2,x\n\n3,NaN,y\n", r"row 4, column 2 \('b'\): missing value \('NaN'\)"),
    ("colour,b,species\n1,2,x\nred,4,y\n", r"row 3, column 1 \('colour'\): 'red' is not a number; allowed: numbers in "
                                           r"every column but the label \('species'\); help: encode that column"),
    ("a,b,species\n1,inf,x\n", r"row 2, column 2 \('b'\): inf is not a finite number"),
    ("a,b,species\n1,2,x\n3,4,\n", r"row 3, column 3 \('species'\): missing label \(''\); allowed: a class name"),
    ("a,b,kind\n1,2,x\n", r"no column 'species' in the header \('a, b, kind'\); help: csv:PATH\?label=NAME"),
    ("species,b,species\n1,2,x\n", r"2 columns 'species' in the header"),
    ("a,b,species\n1,2,x\n3,4\n", r"row 3 has 2 fields; allowed: 3, as in the header"),
    ("a,b,species\n1,2,\"x\n", r"row 2: not a CSV row \(unexpected end of data\)"),
    ("a,b,species\n1,2,x\n", r"1 classes; allowed: 2..10000"),
    ("a,species\n1,x\n2,\x07\n", r"class name '\\x07'; allowed: 1..200 printable characters"),
    ("a,b,species\n", r"3 column\(s\), 0 data row\(s\)"),
    ("", r"no header"),
])
def test_a_bad_labelled_csv_is_one_line_naming_the_row_and_column(tmp_path, text, match):
    path = tmp_path / "t.csv"
    path.write_text(text)
    assert "t.csv" in refused(f"csv:{path}?label=species", match)


@pytest.mark.parametrize("options, match", [
    ("?label=species&colour=red", r"unknown option 'colour'; allowed: \?label=NAME"),
    ("?label=a&label=b", r"an option given twice"),
    ("?label=species&task=clustering", r"task 'clustering'; allowed: classification or regression"),
    ("?task=regression", r"no label name"),
    ("?label=", r"no label name"),
    ("?label=a&task=regression&x=1", r"Max number of fields exceeded"),
])
def test_bad_options_are_one_line(tmp_path, options, match):
    refused(f"csv:{tmp_path / 't.csv'}{options}", match)


def test_the_options_never_change_the_path(tmp_path, monkeypatch):
    (tmp_path / "a?b.csv").write_text("1,0\n2,1\n")
    monkeypatch.chdir(tmp_path)
    assert csv_options("a?b.csv") == ("a?b.csv", csv_options("x")[1])  # a ? without = belongs to the path
    assert load_dataset("csv:a?b.csv").n_input == 1
    path, options = csv_options("../../etc/passwd?label=../../etc/shadow")
    assert path == "../../etc/passwd" and options.label == "../../etc/shadow"  # a label is only a column's name
    refused(f"csv:{tmp_path}/t.csv?label=%2Fetc%2Fpasswd", r"t.csv: file not found")


labelled_cells = st.one_of(st.integers(-5, 5).map(str), st.floats(-1e3, 1e3).map(repr),
                           st.sampled_from(["", "NA", "nan", "x", '"1"', '"a,b"', '"', "inf", "1_0", "\x00", " 2 "]),
                           st.text(max_size=4))


@QUICK
@given(width=st.integers(2, 4), rows=st.lists(st.lists(labelled_cells, min_size=1, max_size=5), max_size=6),
       label=st.sampled_from(["c0", "c1", "species"]), task=st.sampled_from(["", "&task=regression"]))
def test_any_labelled_csv_loads_or_gives_a_data_error(tmp_path, width, rows, label, task):
    path = tmp_path / "t.csv"
    path.write_text("\n".join([",".join(f"c{j}" for j in range(width)), *(",".join(r) for r in rows)]))
    try:
        ds = load_dataset(f"csv:{path}?label={label}{task}")
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(ds.x_train).all() and ds.x_train.shape == (len(rows), width - 1)
    assert len(ds.classes) == (1 if task else int(ds.y_train.max()) + 1)


# --- the example ------------------------------------------------------------------------------------------------------

def test_the_iris_example_trains_from_the_command_line_in_seconds(tmp_path):
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["train", str(EXAMPLES / "iris.yaml"), "--out", str(tmp_path / "iris"), "--json"])
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["test_accuracy"] >= 0.9 and summary["n_test"] == 30, summary
    assert seconds < 20, seconds
    model = snn.load_model(tmp_path / "iris")
    assert model.classes == ("setosa", "versicolor", "virginica") and len(model.preprocessing.mean) == 4


@QUICK
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=30))
def test_regression_scores_agree_with_scikit_learns(pairs):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from snn.metrics import regression_scores

    y, p = (np.array(v).reshape(-1, 1) for v in zip(*pairs))
    scores = regression_scores(y, p)
    assert scores["mse"][0] == pytest.approx(mean_squared_error(y, p), rel=1e-9, abs=1e-9)
    assert scores["mae"][0] == pytest.approx(mean_absolute_error(y, p), rel=1e-9, abs=1e-9)
    if np.ptp(y) > 1e-6:  # sklearn's R^2 of a constant target is its own convention
        assert scores["r2"][0] == pytest.approx(r2_score(y, p), rel=1e-6, abs=1e-9)
