import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES

import snn
from snn.config import parse_config
from snn.core.initializers import INITIALIZERS, initial_weights
from snn.core.layers import Conv2D, Dense, Flatten, MaxPool2D
from snn.core.network import NetworkSpec
from snn.errors import ConfigError

SYMMETRY = "init 'zeros' is only allowed for a network with no hidden layer"


def test_legacy_mode_reproduces_the_course_draws():
    sizes = [5, 4, 3, 1]
    legacy = initial_weights(sizes, "xavier", seed=1, mode="legacy")
    np.random.seed(1)  # the course notebook, verbatim
    course = [np.random.randn(sizes[l], sizes[l - 1]) / np.sqrt(sizes[l - 1]) for l in range(1, len(sizes))]
    for ours, theirs in zip(legacy, course):
        np.testing.assert_array_equal(ours, theirs)


def test_legacy_scaled_matches_the_two_layer_notebook():
    W1, W2 = initial_weights([3, 2, 1], "scaled", seed=1, mode="legacy")
    np.random.seed(1)
    np.testing.assert_array_equal(W1, np.random.randn(2, 3) * 0.01)
    np.testing.assert_array_equal(W2, np.random.randn(1, 2) * 0.01)
    assert W1[0, 0] == pytest.approx(0.01624345363663242)


@pytest.mark.parametrize("name, std", [("scaled", lambda n: 0.01), ("xavier", lambda n: 1 / np.sqrt(n)),
                                       ("he", lambda n: np.sqrt(2 / n))])
def test_normal_initializers_have_their_scale(name, std):
    (W,) = initial_weights([400, 300], name, seed=3)
    assert W.shape == (300, 400)
    assert W.std() == pytest.approx(std(400), rel=0.02)


def test_glorot_uniform_bounds():
    (W,) = initial_weights([100, 50], "glorot_uniform", seed=0)
    r = np.sqrt(6 / 150)
    assert W.min() >= -r and W.max() <= r and W.max() > 0.9 * r


def test_seeded_and_distinct():
    a = initial_weights([10, 5], "he", seed=7)[0]
    assert np.array_equal(a, initial_weights([10, 5], "he", seed=7)[0])
    assert not np.array_equal(a, initial_weights([10, 5], "he", seed=8)[0])


def test_every_registered_initializer_draws():
    for name in INITIALIZERS:
        assert initial_weights([3, 2], name, 0)[0].shape == (2, 3)
    with pytest.raises(ValueError, match="allowed: scaled, xavier, he, glorot_uniform"):
        initial_weights([3, 2], "lecun", 0)


def test_zeros_gives_zero_weights_and_leaves_the_others_draws_alone():
    (W,) = initial_weights([12288, 1], "zeros", seed=1, mode="legacy")
    assert W.shape == (1, 12288) and W.dtype == np.float64 and not W.any()
    # Weightless layers before the only weighted one are no hidden layer: nothing to keep apart.
    images = NetworkSpec((3, 8, 8), (MaxPool2D(2), Flatten(), Dense(2, "softmax")), "cce")
    assert [w.shape for w in initial_weights(images.built, "zeros", 0)] == [(2, 48)]


@pytest.mark.parametrize("layers", [[5, 3, 1], NetworkSpec(4, ((3, "relu"), (1, "sigmoid")), "bce").built,
                                    NetworkSpec((1, 6, 6), (Conv2D(2, 3, "relu"), Flatten(), Dense(1, "sigmoid")),
                                                "bce").built], ids=["sizes", "dense", "conv"])
def test_zeros_is_refused_with_a_hidden_layer_in_the_core(layers):
    with pytest.raises(ValueError, match=SYMMETRY + r".*; use scaled, xavier, he, glorot_uniform$"):
        initial_weights(layers, "zeros", 0)


def network(layers, **fields):
    return {"data": {"dataset": "xor"}, "network": {"layers": layers, **fields}, "training": {"epochs": 1}}


HIDDEN = [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
CONV = [{"type": "conv2d", "filters": 2, "kernel": 3, "activation": "relu"}, {"type": "flatten"},
        {"units": 1, "activation": "sigmoid"}]


@pytest.mark.parametrize("layers", [HIDDEN, CONV], ids=["dense", "conv"])
def test_zeros_is_refused_with_a_hidden_layer_by_the_config(layers):
    with pytest.raises(ConfigError) as e:
        parse_config(network(layers, init="zeros"), "c.json")
    assert str(e.value).startswith(f"c.json: 1 invalid field(s): network.init: got 'zeros'; {SYMMETRY}")
    assert "\n" not in str(e.value)
    assert parse_config(network([{"type": "flatten"}, HIDDEN[-1]], init="zeros")).network.init == "zeros"


def test_the_cli_refuses_it_in_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(network(HIDDEN, init="zeros")))
    proc = subprocess.run([sys.executable, "-m", "snn", "train", str(bad), "--json"], check=False,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and SYMMETRY in proc.stderr and "Traceback" not in proc.stderr


def test_init_scale_belongs_to_scaled_alone():
    with pytest.raises(ValueError, match="init_scale is the factor of init 'scaled' only; init 'xavier' takes none"):
        initial_weights([3, 2], "xavier", 0, scale=0.5)
    with pytest.raises(ConfigError, match="network.init_scale: got 0.5; init_scale is the factor of init 'scaled' only"):
        parse_config(network(HIDDEN[-1:], init="zeros", init_scale=0.5))


def test_logistic_example_follows_the_course(data_root):
    """The course's week 2 notebook: "Cost after iteration 0: 0.693147", "... 100: 0.584508", "... 1900: 0.140872",
    train accuracy 99.04 %, test accuracy 70 %. All 2000 epochs take under two seconds, so the README's row is checked."""
    run = snn.train(EXAMPLES / "catvnoncat-logistic.yaml", data_root=data_root, save=False)
    costs = [r["cost"] for r in run.history]
    assert costs[0] == pytest.approx(0.6931471805599453, abs=1e-12)  # ln 2: every prediction is 0.5
    assert costs[100] == pytest.approx(0.5845083636993086, abs=1e-9)
    assert costs[1900] == pytest.approx(0.140872, abs=1e-6)
    assert (run.summary["train_accuracy"], run.summary["test_accuracy"]) == (pytest.approx(207 / 209), 0.7)
