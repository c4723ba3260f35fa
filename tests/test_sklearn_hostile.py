"""The estimators against hostile model files and hostile arrays.

A model file says what the network is, never where a later fit sends the caller's data; and an
estimator answers finite numbers or raises one ValueError, never NaN.
"""

import json

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_iris

from snn.errors import ModelFileError, SnnError
from snn.sklearn import RUNTIME, SNNClassifier, SNNRegressor

FAST = {"hidden_layer_sizes": (4,), "learning_rate": 0.05, "random_state": 0}


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def fitted(iris):
    X, y = iris
    return SNNClassifier(epochs=20, **FAST).fit(X, y), SNNRegressor(epochs=20, **FAST).fit(X[:, :3], X[:, 3])


def edit_estimator(folder, **changes):
    """Change ``training.estimator`` in the model file of ``folder``, as someone who passes it on might."""
    path = folder / "model.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        where = meta["training"]["estimator"]
        *parents, last = key.split(".")
        for part in parents:
            where = where[part]
        where[last] = value
    path.write_text(json.dumps(meta))


def commands(server) -> int:
    """How many commands the server has run: what a fit that used it would raise by hundreds."""
    return server.info("stats")["total_commands_processed"]


# --- a model file names no store, engine or granularity ------------------------------------------------------------


def test_a_tampered_file_cannot_send_the_callers_data_to_its_store(iris, tmp_path, valkey):
    X, y = iris
    SNNClassifier(epochs=2, **FAST).fit(X, y).save(tmp_path / "m")
    edit_estimator(tmp_path / "m", **{"params.store": valkey, "params.granularity": "layer",
                                      "params.engine": "local"})
    loaded = SNNClassifier.load(tmp_path / "m")
    assert {k: loaded.get_params()[k] for k in RUNTIME} == {"granularity": "network", "engine": "local",
                                                            "store": None}
    server = redis.Redis.from_url(valkey)
    before, keys = commands(server), set(server.keys("*"))
    loaded.partial_fit(X, y)
    loaded.fit(X, y)
    assert loaded.model_.summary["invocations"] == 0  # in process: no store at all
    assert commands(server) - before == 2  # our own INFO and KEYS, and nothing of the fits
    assert set(server.keys("*")) <= keys


def test_the_caller_names_the_store_when_loading(iris, tmp_path, valkey):
    X, y = iris
    SNNClassifier(epochs=2, **FAST).fit(X, y).save(tmp_path / "m")
    loaded = SNNClassifier.load(tmp_path / "m", store=valkey, granularity="layer")
    server = redis.Redis.from_url(valkey)
    before = commands(server)
    assert loaded.partial_fit(X, y).model_.summary["invocations"] > 0
    assert commands(server) - before > 10  # this time the data went where the caller said
    with pytest.raises(TypeError, match=r"got keyword\(s\) address, epochs; allowed: granularity, engine, store"):
        SNNClassifier.load(tmp_path / "m", epochs=5, address="127.0.0.1:6379")


def test_save_writes_no_runtime_setting(iris, tmp_path, valkey):
    X, y = iris
    SNNClassifier(epochs=2, granularity="layer", store=valkey, **FAST).fit(X, y).save(tmp_path / "m")
    text = (tmp_path / "m" / "model.json").read_text()
    params = json.loads(text)["training"]["estimator"]["params"]
    assert not set(RUNTIME) & set(params) and valkey not in text  # a URL may hold a password


@pytest.mark.parametrize(("changes", "message"), [
    ({"feature_names": ["a", "b"]}, r"feature_names has 2 names for the model's 4 inputs; allowed: one per input"),
    ({"params.learning_rate": -1.0}, r"training.estimator.params: .*learning_rate: got -1\.0"),
    ({"params.layers": [{"units": 3, "activation": "swish"}]}, r"params: .*activation: got 'swish'"),
    ({"params.random_state": {"seed": 1}}, r"random_state is \{'seed': 1\}; allowed: a whole number or null"),
    ({"params.address": "10.0.0.1:6379"}, r"parameters .*'address'.*; allowed: SNNClassifier's own"),
])
def test_a_tampered_file_is_one_model_file_error(iris, tmp_path, changes, message):
    X, y = iris
    clf = SNNClassifier(epochs=2, **FAST).fit(X, y)
    clf.feature_names_in_ = np.array(["sl", "sw", "pl", "pw"], dtype=object)  # as a DataFrame would have named them
    clf.save(tmp_path / "m")
    edit_estimator(tmp_path / "m", **changes)
    with pytest.raises(ModelFileError, match=message) as error:
        SNNClassifier.load(tmp_path / "m")
    assert "\n" not in str(error.value)


def test_a_tampered_epoch_count_is_one_model_file_error(iris, tmp_path):
    X, y = iris
    SNNClassifier(epochs=2, **FAST).fit(X, y).save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    meta["training"]["epochs"] = "two"
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"training.epochs is 'two'; allowed: a count >= 0"):
        SNNClassifier.load(tmp_path / "m")


# --- answers are finite, or one ValueError -------------------------------------------------------------------------


def test_huge_inputs_are_refused_not_answered_with_nan(fitted):
    clf, reg = fitted
    for predict in (clf.predict_proba, clf.predict):
        with pytest.raises(ValueError, match=r"^X: row 0 drives the network to infinity or NaN \(2 of 2 rows do\)"):
            predict(np.full((2, 4), 1e308))
    with pytest.raises(ValueError, match=r"^X: row 1 drives the network to infinity or NaN \(1 of 2 rows do\)"):
        reg.predict(np.array([[1.0, 2.0, 3.0], [1e308, -1e308, 1e308]]))
    with pytest.raises(SnnError):  # and it is an snn error too: one line, as every other
        reg.predict(np.full((2, 3), 1e308))
    # scikit-learn's own check sums the array first, where inf and -inf warn before it raises: only the error is seen.
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict(np.array([[0.0, 0.0, np.inf, -np.inf]]))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        SNNClassifier(epochs=2).fit(np.array([[0.0, np.inf], [1.0, -np.inf]]), [0, 1])


def check_answer(call, *args):
    """``call(*args)`` answers finite numbers, or raises one ValueError (ours in one line); never NaN."""
    try:
        out = call(*args)
    except ValueError as e:
        assert not isinstance(e, SnnError) or "\n" not in str(e), str(e)
        return None
    if isinstance(out, np.ndarray) and out.dtype.kind == "f":
        assert np.isfinite(out).all(), out
    return out


finite = st.floats(allow_nan=False, allow_infinity=False)
anything = st.one_of(finite, st.sampled_from([1e308, -1e308, 3.4e38, 1e150, 1e-308, np.nan, np.inf, -np.inf]),
                     st.booleans(), st.integers(-2**63, 2**63 - 1))
cells = st.one_of(anything, st.text(max_size=3), st.none())


def tables(columns):
    """Arrays of ``columns`` features as callers pass them: floats of any size, booleans, integers, or objects."""
    return st.one_of(
        hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]),
                   st.tuples(st.integers(1, 6), st.just(columns))),  # any value of the dtype: NaN, inf, 1e308...
        st.lists(st.lists(anything, min_size=columns, max_size=columns), min_size=1, max_size=6)
        .map(lambda rows: np.array(rows, dtype=object)),
        st.lists(st.lists(cells, min_size=columns, max_size=columns), min_size=1, max_size=6)
        .map(lambda rows: np.array(rows, dtype=object)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_input_to_predict_is_a_finite_answer_or_a_value_error(fitted, data):
    clf, reg = fitted
    X = data.draw(tables(4))
    for call in (clf.predict_proba, clf.predict):
        check_answer(call, X)
    check_answer(reg.predict, X[:, :3])


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_input_to_fit_is_a_fitted_model_or_a_value_error(data):
    X = data.draw(tables(2))
    X = np.concatenate([X, X[::-1]]) if len(X) == 1 else X  # at least 2 rows, so 2 classes
    y = np.arange(len(X)) % 2
    for estimator in (SNNClassifier(epochs=2, **FAST), SNNRegressor(epochs=2, **FAST)):
        if check_answer(estimator.fit, X, y) is not None:
            check_answer(estimator.predict, X)
