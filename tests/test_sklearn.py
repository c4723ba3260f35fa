"""The scikit-learn estimators: sklearn's own conformance suite, model selection, pipelines,
saving, partial_fit, the runtime's parity, and the in-memory datasets they train on."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_iris, make_blobs, make_friedman1, make_regression
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import snn
from conftest import REPO
from snn.data import Dataset, Preprocessing, load_dataset
from snn.errors import ConfigError, DataError, ModelFileError
from snn.sklearn import SNNClassifier, SNNRegressor

# Small and quick: the suite fits each estimator a few hundred times.
FAST = {"hidden_layer_sizes": (8,), "learning_rate": 0.05}


# Every check passes, in process and through the runtime (units as invocations, via the store):
# none is declared as an expected failure.
@parametrize_with_checks([SNNClassifier(epochs=60, **FAST), SNNRegressor(epochs=100, **FAST),
                          SNNClassifier(epochs=60, granularity="layer", **FAST),
                          SNNRegressor(epochs=100, granularity="data:2", **FAST)])
def test_sklearn_conformance(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_grid_search_and_cross_validation(iris):
    X, y = iris
    grid = {"hidden_layer_sizes": [(2,), (16,)], "learning_rate": [0.0001, 0.05]}
    search = GridSearchCV(SNNClassifier(epochs=100, random_state=0), grid, cv=3).fit(X, y)
    # A learning rate of 1e-4 barely moves in 100 epochs; the search must find the one that learns.
    assert search.best_params_["learning_rate"] == 0.05 and search.best_score_ > 0.9
    assert search.best_estimator_.score(X, y) > 0.95
    scores = cross_val_score(SNNClassifier(epochs=100, random_state=0), X, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.9


def test_pipeline_with_a_scaler(iris):
    X, y = iris
    X_train, X_test, y_train, y_test = train_test_split(X * 100, y, random_state=0, stratify=y)  # badly scaled
    pipe = Pipeline([("scale", StandardScaler()), ("net", SNNClassifier(epochs=100, random_state=0))])
    assert pipe.fit(X_train, y_train).score(X_test, y_test) > 0.9
    assert pipe.predict_proba(X_test).shape == (len(y_test), 3)
    np.testing.assert_allclose(pipe.predict_proba(X_test).sum(axis=1), 1.0)


def test_regressor_matches_linear_regression_without_hidden_layers():
    """No hidden layer and a linear output is linear regression by gradient descent: scikit-learn's
    closed form is the oracle, on a held-out split of the diabetes toy set."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    net = SNNRegressor(hidden_layer_sizes=(), random_state=0)
    model = TransformedTargetRegressor(Pipeline([("scale", StandardScaler()), ("net", net)]),
                                       transformer=StandardScaler())
    r2 = model.fit(X_train, y_train).score(X_test, y_test)
    oracle = LinearRegression().fit(X_train, y_train).score(X_test, y_test)
    assert r2 > 0.3 and abs(r2 - oracle) < 0.03


def test_regressor_learns_a_nonlinear_function():
    X, y = make_friedman1(600, noise=1.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    net = SNNRegressor(hidden_layer_sizes=(32,), activation="tanh", epochs=300, random_state=0)
    r2 = Pipeline([("scale", StandardScaler()), ("net", net)]).fit(X_train, y_train).score(X_test, y_test)
    assert r2 > 0.77 > LinearRegression().fit(X_train, y_train).score(X_test, y_test) + 0.02


def test_regressor_with_several_targets():
    X, Y = make_regression(200, 5, n_targets=3, noise=1.0, random_state=0)
    Y = Y / Y.std(axis=0)
    net = SNNRegressor(epochs=300, random_state=0).fit(X, Y)
    assert net.n_outputs_ == 3 and net.predict(X).shape == (200, 3) and net.model_.spec.layers[-1].units == 3
    assert (r2_score(Y, net.predict(X), multioutput="raw_values") > 0.99).all()  # every target, not their mean


labels = st.one_of(st.sets(st.text(min_size=0, max_size=300), min_size=2, max_size=4),
                   st.sets(st.integers(-10**6, 10**6), min_size=2, max_size=4),
                   st.sets(st.integers(-10**6, 10**6).map(float), min_size=2, max_size=4))  # 1.5 is not a class


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=labels)
def test_any_labels_come_back_as_given(names, tmp_path):
    """Strings (even empty or longer than a model file's class names), integers and floats: the
    classes are sklearn's sorted labels, predictions are labels, and a saved model gives them back."""
    names = sorted(names)
    X, index = make_blobs(40 * len(names), centers=len(names), cluster_std=0.3, random_state=0)
    y = np.asarray(names, dtype=object if isinstance(names[0], str) else None)[index]
    clf = SNNClassifier(epochs=80, random_state=0, **FAST).fit(X, y)
    assert list(clf.classes_) == names
    assert (clf.predict(X) == y).mean() > 0.9
    assert clf.predict_proba(X).shape == (len(y), len(names))
    clf.save(tmp_path / "m")
    loaded = SNNClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert list(loaded.classes_) == names


def test_save_and_load_predict_identically(iris, tmp_path):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = SNNClassifier(hidden_layer_sizes=(6, 5), epochs=50, batch_size=32, random_state=4).fit(X, names)
    clf.save(tmp_path / "clf")
    loaded = SNNClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.get_params() == clf.get_params() and loaded.n_features_in_ == 4 and loaded.n_iter_ == 50
    # A loaded estimator trains on exactly as the one that saved it.
    np.testing.assert_array_equal(loaded.partial_fit(X, names).model_.params.flat,
                                  clf.partial_fit(X, names).model_.params.flat)
    meta = json.loads((tmp_path / "clf" / "model.json").read_text())
    assert "task" not in meta and meta["classes"] == ["setosa", "versicolor", "virginica"]  # a classifier's file as ever

    reg = SNNRegressor(epochs=20, random_state=0).fit(X[:, :3], X[:, 3])
    reg.save(tmp_path / "reg")
    np.testing.assert_array_equal(SNNRegressor.load(tmp_path / "reg").predict(X[:, :3]), reg.predict(X[:, :3]))
    assert json.loads((tmp_path / "reg" / "model.json").read_text())["task"] == "regression"
    with pytest.raises(ModelFileError, match="is a regression model; help: load it with the SNNRegressor"):
        SNNClassifier.load(tmp_path / "reg")


def test_a_tampered_estimator_section_is_one_clear_error(iris, tmp_path):
    X, y = iris
    SNNClassifier(epochs=5, random_state=0).fit(X, y).save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    meta["training"]["estimator"]["params"]["exec"] = "rm -rf /"
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"saved by SNNClassifier with parameters .*'exec'.*; allowed: "):
        SNNClassifier.load(tmp_path / "m")
    meta["training"]["estimator"] = {"estimator": "SNNClassifier", "params": {}, "seed": -1}
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"training.estimator: seed: Input should be greater than or equal to 0"):
        SNNClassifier.load(tmp_path / "m")


def test_a_model_snn_train_made_loads_as_an_estimator(tmp_path):
    cfg = {"data": {"dataset": "xor"}, "training": {"epochs": 30, "optimizer": {"name": "adam", "learning_rate": 0.05}},
           "network": {"layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}}
    run = snn.train(cfg, run_dir=tmp_path / "xor")
    clf = SNNClassifier.load(run.run_dir)
    x = load_dataset("xor").x_test
    np.testing.assert_array_equal(clf.predict(x), run.model.predict(x.T).astype(str))
    assert clf.get_params()["layers"] == [{"type": "dense", "units": 6, "activation": "tanh"}]
    assert clf.partial_fit(x, clf.predict(x)).n_iter_ == 31  # its own layers and optimizer: it trains on


def test_partial_fit_goes_on_with_the_optimizer_state(iris):
    X, y = iris
    settings_ = {"epochs": 4, "batch_size": 32, "random_state": 2, "optimizer": "adam", **FAST}
    whole = SNNClassifier(**settings_).fit(X, y)
    parts = SNNClassifier(**settings_)
    for _ in range(4):
        parts.partial_fit(X, y, classes=[0, 1, 2])
    # Same shuffles (seeded by epoch), and Adam's moments carried over: the same numbers as one fit.
    np.testing.assert_array_equal(parts.model_.params.flat, whole.model_.params.flat)
    assert parts.n_iter_ == 4 and [r["epoch"] for r in parts.history_] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        SNNClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"y contains labels not in classes_"):
        parts.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="is not the same as on the first call"):
        parts.partial_fit(X, y, classes=[0, 1])
    reg = SNNRegressor(epochs=1, random_state=0).fit(X[:, :3], X[:, 3])
    assert reg.partial_fit(X[:, :3], X[:, 3]).n_iter_ == 2


@pytest.mark.parametrize("granularity", ["layer", "data:2"])
def test_the_runtime_trains_the_same_network(iris, granularity):
    """Through the runtime (units as function invocations on the local engine, via the store),
    the parameters are the in-process network's within 1e-9, and so the predictions are its."""
    X, y = iris
    kw = {"hidden_layer_sizes": (5,), "epochs": 8, "batch_size": 50, "random_state": 3}
    local = SNNClassifier(**kw).fit(X, y)
    remote = SNNClassifier(granularity=granularity, **kw).fit(X, y)
    np.testing.assert_allclose(remote.model_.params.flat, local.model_.params.flat, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))
    assert remote.model_.summary["invocations"] > 0 and local.model_.summary["invocations"] == 0


def test_a_grid_search_trains_neuron_by_neuron_on_ray(iris):
    """Each fit of the search (two folds, then the refit) starts a local Ray and runs every neuron of
    every step there as a task; the refit model is the in-process one's within 1e-9."""
    X, y = iris
    kw = {"hidden_layer_sizes": (3,), "epochs": 3, "random_state": 0}
    search = GridSearchCV(SNNClassifier(granularity="neuron", engine="ray", **kw), {"learning_rate": [0.05]}, cv=2)
    best = search.fit(X, y).best_estimator_
    assert best.model_.summary["engine"] == "ray" and best.model_.summary["invocations"] == 3 * (3 + 3 + 1 + 3 + 3)
    local = SNNClassifier(learning_rate=0.05, **kw).fit(X, y)
    np.testing.assert_allclose(best.model_.params.flat, local.model_.params.flat, rtol=0, atol=1e-9)


def test_early_stopping_keeps_the_best_model(iris):
    X, y = iris
    clf = SNNClassifier(epochs=2000, validation_split=0.2, patience=5, learning_rate=0.2, random_state=0).fit(X, y)
    best = min(clf.history_, key=lambda r: r["val_cost"])
    assert clf.n_iter_ < 2000 and clf.n_iter_ == best["epoch"] + 5
    assert clf.model_.summary["best_epoch"] == best["epoch"]


def test_bad_parameters_name_the_field(iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"^SNNClassifier parameters: 1 invalid field\(s\): "
                                         r"training.optimizer.learning_rate: got -1\.0; input should be greater than 0$"):
        SNNClassifier(learning_rate=-1.0).fit(X, y)
    with pytest.raises(ValueError, match=r"training.patience selects by validation cost; set data.validation_split"):
        SNNClassifier(patience=3).fit(X, y)
    with pytest.raises(ValueError, match=r"network.layers.0.activation: got 'swish'"):
        SNNClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match=r"needs examples of at least 2 classes; got 1 class \('a'\)"):
        SNNClassifier().fit(X, ["a"] * len(X))


def test_numpy_numbers_from_a_grid_are_plain_numbers(iris):
    X, y = iris
    clf = SNNClassifier(hidden_layer_sizes=np.array([4, 3]), epochs=np.int64(3), learning_rate=np.float32(0.05))
    assert [l.units for l in clf.fit(X, y).model_.spec.layers] == [4, 3, 3] and clf.n_iter_ == 3


def test_feature_names_from_a_dataframe(iris):
    X, y = iris
    assert not hasattr(SNNClassifier(epochs=2).fit(X, y), "feature_names_in_")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    clf = SNNClassifier(epochs=2).fit(frame, y)
    assert list(clf.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        clf.predict(frame.rename(columns={"sl": "x"}))


# --- snn.train on arrays in memory, which the estimators use ---------------------------------------------------------

XOR = {"data": {"dataset": "xor"}, "training": {"epochs": 20, "batch_size": 64, "optimizer": {"name": "adam"}},
       "network": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}}


def test_train_on_a_dataset_in_memory_is_training_on_its_file():
    from_file = snn.train(XOR, save=False)
    in_memory = snn.train({**XOR, "data": {"dataset": "mine"}}, save=False, dataset=load_dataset("xor"))
    np.testing.assert_array_equal(in_memory.model.params.flat, from_file.model.params.flat)
    assert in_memory.summary["test_accuracy"] == from_file.summary["test_accuracy"]


def test_train_from_a_model_goes_on_where_it_ended():
    whole = snn.train({**XOR, "training": {**XOR["training"], "epochs": 30}}, save=False)
    first = snn.train(XOR, save=False)
    rest = snn.train({**XOR, "training": {**XOR["training"], "epochs": 30}}, save=False, start=first.model)
    np.testing.assert_array_equal(rest.model.params.flat, whole.model.params.flat)
    assert rest.summary["epochs"] == 30 and [r["epoch"] for r in rest.history] == list(range(21, 31))
    other = {**XOR, "network": {"layers": [{"units": 5, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}}
    with pytest.raises(ConfigError, match="the model to start from is not this network"):
        snn.train(other, save=False, start=first.model)
    odd = replace(first.model, summary={**first.model.summary, "epochs": "twenty"})
    with pytest.raises(ConfigError, match="says it had 'twenty' epochs; allowed: a count >= 0"):
        snn.train(XOR, save=False, start=odd)


def arrays(x, y, task="classification", classes=("0", "1")):
    return Dataset("mine", np.asarray(x), np.asarray(y), classes, Preprocessing("table", (np.shape(x)[1],)), task=task)


@pytest.mark.parametrize(("dataset", "message"), [
    (arrays([[0.0, np.nan], [1, 1]], [0, 1]), r"^mine: x_train: at index \(0, 1\): nan is not a finite number"),
    (arrays([[0.0, 1], [1, 1]], [0, 2]), r"^mine: y_train: example 1: label 2; allowed: whole numbers 0..1$"),
    (arrays([[0.0, 1], [1, 1]], [0]), r"^mine: x_train has 2 examples and y_train has 1"),
    (arrays([["a", "b"], ["c", "d"]], [0, 1]), r"^mine: x_train: dtype <U1 \(text\); allowed: bool, integer or float"),
    (arrays([[0.0, 1], [1, 1]], [[0.5], [np.inf]], "regression", ("y",)),
     r"^mine: y_train: example 1: target 0 is inf; allowed: finite numbers"),
    (arrays([[0.0, 1], [1, 1]], [0.5, 1.5], "regression", ("y",)),
     r"^mine: y_train: targets of shape \(2,\); allowed: \(examples, 1\)"),
])
def test_arrays_in_memory_are_checked_like_a_file(dataset, message):
    with pytest.raises(DataError, match=message) as error:
        snn.train({**XOR, "data": {"dataset": "mine"}}, save=False, dataset=dataset)
    assert "\n" not in str(error.value)


def test_readme_sklearn_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (code,) = re.findall(r"```py\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README, not user input
    assert scope["search"].best_params_ == {"hidden_layer_sizes": (8,), "learning_rate": 0.01}
    assert round(scope["scores"].mean(), 2) == 0.96
    assert scope["pipe"][-1].granularity == "neuron" and (tmp_path / "iris-model" / "model.json").exists()
