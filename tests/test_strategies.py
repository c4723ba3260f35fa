"""Training strategies: each against a plain implementation of its rule, on every engine."""

import json

import numpy as np
import pytest

import snn
from snn.core.network import Network, Params, targets
from snn.core.optimizers import make_optimizer
from snn.core.training import SHUFFLE, batches, epoch_rng
from snn.run import initial_params

BASE = {"name": "s", "data": {"dataset": "spiral", "subset": 60, "validation_split": 0.2},
        "network": {"layers": [{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
                    "init": "xavier"},
        "training": {"epochs": 3, "batch_size": 8, "seed": 2, "l2": 0.1,
                     "optimizer": {"name": "adam", "learning_rate": 0.01}}}


def config(**training):
    return {**BASE, "training": {**BASE["training"], **training}}


def plain(cfg, rule):
    """Each epoch, written out: one Adam step per batch from the same start, then the rule."""
    run = snn.train({**cfg, "training": {**cfg["training"], "epochs": 1}}, save=False)  # for the data split
    ds = snn.load_dataset("spiral").subset(60).with_validation(0.2, cfg["training"]["seed"])
    spec = run.model.spec
    net = Network(spec)
    X, Y = ds.preprocessing.columns(ds.x_train), targets(ds.y_train, 3)
    Xv, Yv = ds.preprocessing.columns(ds.x_val), targets(ds.y_val, 3)
    params = initial_params(snn.parse_config(cfg), spec)
    adam = make_optimizer("adam")
    state = adam.init_state(params.flat.size, np.float64)
    t = cfg["training"]
    for epoch in range(t["epochs"]):
        results = []
        for Xb, Yb, _ in batches(X, Y, Y.argmax(axis=0), t["batch_size"], epoch_rng(t["seed"], SHUFFLE, epoch)):
            p = Params(params.sizes, params.flat.copy())
            s = {k: v.copy() for k, v in state.items()}
            _, grads, _ = net.gradients(p, Xb, Yb, t["l2"])
            adam.step(p.flat, grads.flat, s, t["optimizer"]["learning_rate"])
            results.append((p.flat, s, Xb.shape[1]))
        if rule == "best":
            costs = [net.cost(Params(params.sizes, f), net.forward(Params(params.sizes, f), Xv), Yv) for f, _, _ in results]
            flat, s, _ = results[int(np.argmin(costs))]
        else:
            total = sum(w for _, _, w in results)
            flat = sum(f * w for f, _, w in results) / total
            s = {k: (results[0][1][k] if k == "t" else sum(r[1][k] * r[2] for r in results) / total) for k in state}
        params.flat[...] = flat
        state = {k: np.array(v, copy=True) for k, v in s.items()}
    return params.flat


@pytest.mark.parametrize("strategy", ["average", "best", "tree"])
def test_parallel_strategies_match_their_plain_rule_on_every_engine(engine, strategy):
    cfg = config(strategy=strategy, fan_in=3)
    expected = plain(cfg, "best" if strategy == "best" else "average")
    in_process = snn.train(cfg, save=False)
    np.testing.assert_allclose(in_process.model.params.flat, expected, rtol=0, atol=1e-12)
    store = "memory" if engine == "local" else None
    if engine == "lithops":
        cfg = config(strategy=strategy, fan_in=3, epochs=1, batch_size=16)
        expected = snn.train(cfg, save=False).model.params.flat
    run = snn.train({**cfg, "runtime": {"engine": engine, "store": store}}, save=False)
    np.testing.assert_allclose(run.model.params.flat, expected, rtol=0, atol=1e-12)
    merges = [r for r in run.ledger.records if r["phase"] == "merge"]
    assert merges and all(r["status"] == "ok" for r in merges)


@pytest.mark.parametrize("reduce", ["allreduce", "scatter-reduce"])
def test_sync_with_k_workers_equals_the_single_process_run(engine, reduce):
    cfg = config(reduce=reduce, epochs=1 if engine == "lithops" else 3, batch_size=None if engine == "lithops" else 8)
    ref = snn.train(cfg, save=False)
    store = "memory" if engine == "local" else None
    for k in (1, 2) if engine != "lithops" else (2,):
        run = snn.train({**cfg, "runtime": {"granularity": f"data:{k}", "engine": engine, "store": store}}, save=False)
        assert np.abs(run.model.params.flat - ref.model.params.flat).max() <= 1e-9
        reducers = {r["unit"] for r in run.ledger.records if r["phase"] == "reduce"}
        assert len(reducers) == (k if reduce == "scatter-reduce" else 1)


def test_an_epoch_never_closes_before_its_last_shard():
    """Shards delayed at random: every reduce and merge starts after its step's last shard ended."""
    chaos = "delay=0.5,delay_s=0.03,dup=0.2,seed=4"
    for cfg in (config(batch_size=16), config(strategy="average", batch_size=16)):
        granularity = "data:3" if cfg["training"].get("strategy", "sync") == "sync" else "network"
        clean = snn.train(cfg, save=False)
        run = snn.train({**cfg, "runtime": {"granularity": granularity, "chaos": chaos, "unit_timeout": 5.0}},
                        save=False)
        np.testing.assert_allclose(run.model.params.flat, clean.model.params.flat, rtol=0, atol=1e-12)
        assert run.ledger.counts["injected_delay"] > 0
        workers = {"shard", "local"}
        for step in {r["step"] for r in run.ledger.records}:
            mine = [r for r in run.ledger.records if r["step"] == step and r["status"] == "ok"]
            last_worker = max(r["end"] for r in mine if r["phase"] in workers and not r["duplicate"])
            closers = [r for r in mine if r["phase"] not in workers and not r["duplicate"]]
            assert closers and min(r["start"] for r in closers) >= last_worker


def test_strategy_errors():
    with pytest.raises(snn.SnnError, match="strategy 'best' selects by validation cost; set data.validation_split > 0"):
        snn.train({**config(strategy="best"), "data": {"dataset": "spiral"}}, save=False)
    with pytest.raises(snn.SnnError, match="granularity 'neuron' is for sync"):
        snn.train({**config(strategy="average"), "runtime": {"granularity": "neuron"}}, save=False)


def test_patience_stops_and_keeps_the_best_model():
    cfg = config(epochs=200, batch_size=8, patience=3)
    cfg["training"]["optimizer"]["learning_rate"] = 0.2  # big steps: validation cost turns up soon
    run = snn.train(cfg, save=False)
    val = [r["val_cost"] for r in run.history]
    best = int(np.argmin(val)) + 1
    assert run.summary["stopped_early"] and len(val) == best + 3
    assert run.summary["best_epoch"] == best and run.summary["best_val_cost"] == min(val)
    again = snn.train({**cfg, "training": {**cfg["training"], "epochs": best, "patience": None}}, save=False)
    np.testing.assert_array_equal(run.model.params.flat, again.model.params.flat)


def test_threshold_is_compared_exactly():
    first = snn.train(config(epochs=3), save=False).history
    cut = first[1]["cost"]
    equal = snn.train(config(epochs=3, threshold=cut), save=False)
    assert len(equal.history) == 3  # equal is not below: no rounding
    below = snn.train(config(epochs=3, threshold=float(np.nextafter(cut, np.inf))), save=False)
    assert len(below.history) == 2


def test_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    """Decided by sure bounds, not by how fast this machine is: every request costs at least its price."""
    from snn.cost import load_prices

    cfg = {**config(epochs=6), "runtime": {"granularity": "layer"}}
    prices = load_prices()
    one_request = prices["lambda"]["request_per_million"] / 1e6
    run = snn.train({**cfg, "runtime": {**cfg["runtime"], "budget_usd": one_request}}, run_dir=tmp_path / "run")
    assert run.summary["stopped"] and "budget" in run.summary["stop_reason"]
    assert run.summary["epochs"] == 1  # one epoch already costs more than one request
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["epoch"] == 1
    rich = snn.train({**cfg, "runtime": {**cfg["runtime"], "budget_usd": 1e6}}, save=False)
    assert not rich.summary["stopped"] and rich.summary["epochs"] == 6
