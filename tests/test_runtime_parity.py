"""Every granularity on every engine ends where the in-process network ends."""

import numpy as np
import pytest

import snn
from snn.core.network import Params
from snn.runtime.plan import parse_granularity, row_ranges, shard_ranges, unit_indices

GRANULARITIES = ["network", "layer", "neuron", "block:4", "data:3"]


def units_run(summary: dict) -> int:
    """The invocations of a clean run less its hedges' copies: one per unit and step.

    On a loaded machine a unit can be slow enough for the coordinator to send a speculative
    copy; the copy is an extra delivery (a duplicate), never an extra effect.
    """
    return summary["invocations"] - summary["speculative"]


def small(epochs=2, batch_size=None, **training):
    """A small float64 network with every feature the runtime has to carry."""
    return {
        "name": "small", "data": {"dataset": "spiral", "subset": 48},
        "network": {"layers": [{"units": 6, "activation": "tanh"}, {"units": 5, "activation": "relu"},
                               {"units": 3, "activation": "softmax"}], "init": "xavier"},
        "training": {"epochs": epochs, "batch_size": batch_size, "seed": 3, "l2": 0.05,
                     "optimizer": {"name": "adam", "learning_rate": 0.02}, **training},
    }


def oracle(cfg):
    return snn.train(cfg, save=False)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_parity_matrix(engine, granularity):
    # Lithops' localhost backend pays ~0.5 s per stage: one full-batch epoch there.
    cfg = small(epochs=1) if engine == "lithops" else small(epochs=2, batch_size=20, dropout=0.2)
    ref = oracle(cfg)
    # An explicit store sends even network on local through functions and the store.
    store = "memory" if engine == "local" else None
    run = snn.train({**cfg, "runtime": {"granularity": granularity, "engine": engine, "store": store}}, save=False)
    assert np.abs(run.model.params.flat - ref.model.params.flat).max() <= 1e-9
    for a, b in zip(run.history, ref.history):
        assert a["cost"] == pytest.approx(b["cost"], abs=1e-9) and a["train_accuracy"] == b["train_accuracy"]
    for name, tensor in run.model.optimizer_state.items():
        np.testing.assert_allclose(tensor, ref.model.optimizer_state[name], atol=1e-9)
    assert units_run(run.summary) > 0 and run.summary["duplicates_suppressed"] == run.summary["speculative"]


CONV_GRANULARITIES = ["network", "layer", "neuron", "block:2", "data:2"]


@pytest.mark.parametrize("granularity", CONV_GRANULARITIES)
def test_a_conv_network_matches_at_every_granularity(engine, granularity, data_root):
    """One neuron is one filter; pooling and flatten run inside the units before them."""
    from test_conv_layers import tiny_cnn

    # Lithops pays ~0.5 s a stage and neuron runs 9 stages a step: one full-batch epoch there.
    cfg = tiny_cnn(epochs=1, batch_size=None, dropout=0.0) if engine == "lithops" else tiny_cnn()
    ref = snn.train(cfg, data_root=data_root, save=False)
    store = "memory" if engine == "local" else None
    run = snn.train({**cfg, "runtime": {"granularity": granularity, "engine": engine, "store": store}},
                    data_root=data_root, save=False)
    assert np.abs(run.model.params.flat - ref.model.params.flat).max() <= 1e-9
    assert [r["cost"] for r in run.history] == pytest.approx([r["cost"] for r in ref.history], abs=1e-9)
    assert units_run(run.summary) == len(run.history) * conv_units_per_step(granularity, cfg)


def conv_units_per_step(granularity, cfg) -> int:
    """Invocations per step of ``tiny_cnn``: conv 3, conv 4, dense 8 and 10 neurons; no unit for pool or flatten."""
    steps = 1 if not cfg["training"]["batch_size"] else -(-96 // cfg["training"]["batch_size"])
    per = {"network": 1, "layer": 2 * 4 + 1, "neuron": 2 * (3 + 4 + 8 + 10) + 1,
           "block:2": 2 * (2 + 2 + 4 + 5) + 1, "data:2": 2 + 1}[granularity]
    return steps * per


def test_a_network_opening_with_pooling_splits_into_filters(data_root):
    """Layers without parameters before the first layer with neurons run in its units; conv follows conv."""
    from test_conv_layers import tiny_cnn

    cfg = tiny_cnn(epochs=1)
    cfg["network"]["layers"] = [
        {"type": "maxpool2d", "size": 2}, {"type": "conv2d", "filters": 3, "kernel": 3, "activation": "relu"},
        {"type": "conv2d", "filters": 2, "kernel": 3, "activation": "sigmoid", "stride": 2}, {"type": "flatten"},
        {"units": 10, "activation": "softmax"}]
    ref = snn.train(cfg, data_root=data_root, save=False)
    run = snn.train({**cfg, "runtime": {"granularity": "neuron"}}, data_root=data_root, save=False)
    assert np.abs(run.model.params.flat - ref.model.params.flat).max() <= 1e-9
    assert units_run(run.summary) == 3 * (2 * (3 + 2 + 10) + 1)


def test_sgd_momentum_and_rmsprop_through_neurons():
    for opt in ("gd", "momentum", "rmsprop"):
        cfg = small(epochs=3, batch_size=16)
        cfg["training"]["optimizer"] = {"name": opt, "learning_rate": 0.05}
        ref = oracle(cfg)
        run = snn.train({**cfg, "runtime": {"granularity": "neuron"}}, save=False)
        assert np.abs(run.model.params.flat - ref.model.params.flat).max() <= 1e-9, opt


@pytest.mark.slow
def test_cat_four_layer_neuron_by_neuron_matches_the_network(data_root):
    """The seeds' own run: 12288-20-7-5-1, 2,500 epochs, every neuron an invocation."""
    from conftest import EXAMPLES

    ref = snn.train(EXAMPLES / "catvnoncat-4layer.json", data_root=data_root, save=False)
    run = snn.train(EXAMPLES / "catvnoncat-4layer.json", data_root=data_root, save=False,
                    **{"runtime.granularity": "neuron"})
    assert len(run.history) == 2500
    worst = max(abs(a["cost"] - b["cost"]) for a, b in zip(run.history, ref.history))
    assert worst <= 1e-9
    assert run.summary["test_accuracy"] == ref.summary["test_accuracy"] == 0.8
    assert units_run(run.summary) == 2500 * (2 * (20 + 7 + 5 + 1) + 1)


def test_granularity_names_and_units():
    assert [parse_granularity(g).name for g in GRANULARITIES] == GRANULARITIES
    with pytest.raises(ValueError, match="is not one of network, layer, neuron, block:N, data:K"):
        parse_granularity("block:0")
    assert row_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)] and row_ranges(7, 0) == [(0, 7)]
    assert shard_ranges(10, 3) == [(0, 3), (3, 7), (7, 10)] and shard_ranges(2, 5) == [(0, 1), (1, 2)]
    p = Params(s := [4, 3, 2], np.arange(23.0))
    idx = unit_indices(s, 1, 1, 2)
    np.testing.assert_array_equal(p.flat[idx], np.concatenate([p.W[1][1], p.b[1][1]]))
