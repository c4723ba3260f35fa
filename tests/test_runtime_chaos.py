"""At-least-once delivery, lost and failing functions: still exactly-once effects."""

import sys

import numpy as np
import pytest
from test_runtime_parity import small, units_run

import snn
from snn.errors import SnnError
from snn.runtime.engines import EngineUnavailable, make_engine
from snn.runtime.engines.chaos import parse_chaos

CHAOS = "dup=0.3,drop=0.1,fail=0.05,delay=0.05,delay_s=0.01,seed=7"


def units_per_step(granularity, net):
    """How many units one step runs: of ``small()`` (6, 5, 3 neurons), or of ``tiny_cnn()`` (3 and 4
    filters, 8 and 10 neurons; pooling and flatten run inside the filters' units)."""
    if net == "cnn":
        return {"layer": 2 * 4 + 1, "neuron": 2 * (3 + 4 + 8 + 10) + 1}[granularity]
    return {"network": 1, "layer": 7, "neuron": 2 * (6 + 5 + 3) + 1, "data:3": 4}[granularity]


# Lithops' localhost backend pays ~0.5 s a stage, so there the fine-grained case is layer.
CASES = [(e, g, "mlp") for e in ("local", "ray") for g in ("network", "neuron", "data:3")] + [
    ("lithops", "network", "mlp"), ("lithops", "layer", "mlp"), ("lithops", "data:3", "mlp"),
    ("local", "neuron", "cnn"), ("ray", "neuron", "cnn"), ("lithops", "layer", "cnn")]


@pytest.mark.parametrize("engine, granularity, net", CASES)
def test_chaos_ends_with_the_clean_parameters(request, engine, granularity, net):
    """With the limits a user gets: a lost or failed delivery is sent again long before the
    60 s unit timeout, and the run ends with the clean run's parameters.

    Nothing here depends on how fast the machine is. A unit that has not answered by its
    hedge time gets a speculative copy, whether it was lost or only slow; outputs are written
    set-if-absent, so the slow one and its copy leave the same values, one of them as a
    duplicate, and the coordinator settles every delivery before a step's keys are deleted
    and the ledger is read. So every assertion below holds whatever raced with what.
    """
    if engine == "ray":
        request.getfixturevalue("ray_session")
    epochs = 1 if engine == "lithops" else 2
    if net == "cnn":
        from test_conv_layers import tiny_cnn

        cfg, root = tiny_cnn(epochs=epochs, batch_size=None), request.getfixturevalue("data_root")
    else:
        cfg, root = small(epochs=epochs), None
    store = "memory" if engine == "local" else None
    clean = snn.train({**cfg, "runtime": {"granularity": granularity, "engine": engine, "store": store}}, root, save=False)
    run = snn.train({**cfg, "runtime": {"granularity": granularity, "engine": engine, "chaos": CHAOS}}, root, save=False)
    np.testing.assert_array_equal(run.model.params.flat, clean.model.params.flat)
    assert [r["cost"] for r in run.history] == [r["cost"] for r in clean.history]

    s, counts = run.summary, run.ledger.counts
    injected = {k[len("injected_"):]: v for k, v in counts.items() if k.startswith("injected_")}
    drops, fails = injected.get("drop", 0), injected.get("fail", 0)
    assert sum(injected.values()) > 0
    # No unit waited for the hard timeout: hedges found every lost delivery first.
    assert s["lost_and_retried"] == 0
    if drops:
        assert 0 < s["speculative_won"] <= s["speculative"]
    # A failure is seen when it comes back, unless a copy of its unit had won already; it is
    # sent again unless a copy is still running, or its done record shows it failed after its work.
    assert s["failures_retried"] <= fails and s["retries"] <= s["failures_retried"]
    assert s["duplicates_suppressed"] >= injected.get("dup", 0)
    # Exactly once: one effective (non-duplicate) execution per unit per step.
    effective = [r for r in run.ledger.records if r["status"] == "ok" and not r["duplicate"]]
    assert len(effective) == epochs * units_per_step(granularity, net) == units_run(clean.summary)
    assert len({(r["step"], r["phase"], r["layer"], r["unit"]) for r in effective}) == len(effective)


def test_a_live_unit_slower_than_its_timeout_is_retried_harmlessly(valkey):
    """Hedging off, units delayed 20 times past their timeout: each is given up on while it still
    runs, and retried: the hard ceiling that remains under the hedges.

    The late original and its retry leave the same outputs (set-if-absent), the coordinator waits
    for the late ones before a step's keys go, so the run ends exact, every unit effective
    once, and every late delivery on the ledger. (The 1.9 s between the timeout and the end
    of a delayed unit is the margin for a coordinator that wakes late on a loaded machine.)
    """
    cfg = small(epochs=1)
    clean = snn.train(cfg, save=False)
    # Workers enough for the late ones to sleep on: in a pool of two, two late deliveries would
    # hold every thread, and their retries would wait in the queue until they too timed out.
    run = snn.train({**cfg, "runtime": {"granularity": "layer", "store": valkey, "unit_timeout": 0.1, "max_retries": 20,
                                         "retry_backoff": 0.0, "workers": 32, "hedge_factor": 0,
                                         "chaos": "delay=0.3,delay_s=2.0,seed=5"}},
                    save=False)
    np.testing.assert_array_equal(run.model.params.flat, clean.model.params.flat)
    delayed, s = run.ledger.counts["injected_delay"], run.summary
    assert delayed > 0 and s["lost_and_retried"] >= delayed and s["failures_retried"] == 0
    assert s["speculative"] == 0
    late = [r for r in run.ledger.records if r["status"] == "ok" and r["end"] - r["start"] >= 2.0]
    assert len(late) == delayed  # every given-up delivery ran to its end, and what it did is counted
    effective = [r for r in run.ledger.records if r["status"] == "ok" and not r["duplicate"]]
    units = units_per_step("layer", "mlp")
    assert len(effective) == len({(r["phase"], r["layer"], r["unit"]) for r in effective}) == units


def test_a_straggler_is_overtaken_by_its_hedge(valkey):
    """With the default limits, stragglers 5 s slow: each gets a speculative copy, which wins.

    The chaos delays are drawn per delivery, so a copy is slow again only by chance; the
    ledger marks the copies, the straggler still runs to its end and is counted as a
    duplicate, and nothing waited for the 60 s unit timeout.
    """
    cfg = small(epochs=1)
    clean = snn.train({**cfg, "runtime": {"granularity": "neuron"}}, save=False)
    run = snn.train({**cfg, "runtime": {"granularity": "neuron", "store": valkey, "workers": 32,
                                         "chaos": "delay=0.1,delay_s=5.0,seed=3"}}, save=False)
    np.testing.assert_array_equal(run.model.params.flat, clean.model.params.flat)
    delayed, s = run.ledger.counts["injected_delay"], run.summary
    assert delayed > 0 and s["lost_and_retried"] == 0 and s["retries"] == 0
    # Saved: how much sooner than its straggler each copy that won finished: never more than a delay.
    assert s["speculative_won"] >= 1 and 0 < s["speculative_saved_seconds"] <= 5.0 * s["speculative_won"]
    copies = [r for r in run.ledger.records if r["speculative"]]
    assert len(copies) == s["speculative"]  # every copy ran, and its record says it was one
    late = [r for r in run.ledger.records if r["end"] - r["start"] >= 5.0]
    assert len(late) == delayed and all(r["duplicate"] for r in late if not r["speculative"])
    effective = [r for r in run.ledger.records if r["status"] == "ok" and not r["duplicate"]]
    assert len(effective) == len({(r["phase"], r["layer"], r["unit"]) for r in effective}) == units_per_step("neuron", "mlp")


def test_ledger_is_saved_with_the_run(tmp_path):
    run = snn.train({**small(epochs=2), "runtime": {"granularity": "layer", "chaos": "dup=0.5,seed=1"}},
                    run_dir=tmp_path / "run")
    lines = (tmp_path / "run" / "invocations.csv").read_text().splitlines()
    assert lines[0].startswith("phase,layer,unit,step,attempt,duplicate,status,worker,sent,start,end,bytes_in,bytes_out")
    assert lines[0].endswith(",speculative")
    assert len(lines) - 1 == run.summary["invocations"] == 14 + run.summary["duplicates_suppressed"]
    assert run.summary["duplicates_suppressed"] > 0
    assert any(",True,ok," in line for line in lines)


@pytest.mark.parametrize("server", ["valkey", "redis_server"])
def test_nothing_is_left_in_the_store_and_the_run_is_exact(request, server):
    """On the embedded Valkey and on Debian's redis-server, with chaos and the default limits."""
    import redis

    url = request.getfixturevalue(server)
    client = redis.Redis.from_url(url)
    before = client.dbsize()
    cfg = small(epochs=2, batch_size=16)
    clean = snn.train({**cfg, "runtime": {"granularity": "neuron"}}, save=False)
    run = snn.train({**cfg, "runtime": {"granularity": "neuron", "store": url, "chaos": "dup=0.2,drop=0.05,seed=3"}},
                    save=False)
    assert client.dbsize() == before
    # Within rounding: with a server, one-unit stages run on the pool's one-thread BLAS, in process inline.
    np.testing.assert_allclose(run.model.params.flat, clean.model.params.flat, rtol=0, atol=1e-12)


def test_a_unit_that_keeps_failing_ends_the_run_clearly_with_its_checkpoint(tmp_path):
    cfg = {**small(epochs=3), "runtime": {"granularity": "layer", "chaos": "fail=0.95,seed=2", "max_retries": 2,
                                           "retry_backoff": 0.0, "checkpoint_every": 1}}
    with pytest.raises(SnnError, match=r"unit \w+:\d+:\d+ of step \d+ failed 3 times, the last with "
                                       r"InjectedFailure: .*; (no epoch had ended|a checkpoint of epoch \d+ was written)"):
        snn.train(cfg, run_dir=tmp_path / "run")


def test_max_invocations_is_a_hard_guard(tmp_path):
    cfg = {**small(epochs=5), "runtime": {"granularity": "neuron", "max_invocations": 60}}
    with pytest.raises(SnnError, match="--max-invocations 60 reached"):
        snn.train(cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.json").exists()  # the epoch finished before the limit is kept


def test_missing_engine_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "snn.runtime.engines.ray", raising=False)
    with pytest.raises(EngineUnavailable, match=r"pip install 'serverless-nn\[ray\]'"):
        make_engine("ray")
    with pytest.raises(SnnError, match="unknown engine 'spark'; allowed: local, ray, lithops"):
        make_engine("spark")


def test_memory_store_cannot_serve_other_processes(ray_session):
    with pytest.raises(SnnError, match="lives in one process"):
        snn.train({**small(epochs=1), "runtime": {"engine": "ray", "store": "memory"}}, save=False)


def test_chaos_settings():
    c = parse_chaos("dup=0.3,drop=0.1,fail=0.05,delay=0.01")
    assert (c.dup, c.drop, c.fail, c.delay, c.active) == (0.3, 0.1, 0.05, 0.01, True)
    assert not parse_chaos(None).active
    with pytest.raises(ValueError, match="unknown setting 'lose'"):
        parse_chaos("lose=0.1")
    with pytest.raises(ValueError, match="must be a probability"):
        parse_chaos("drop=1.5")
    for bad in ("-1", "nan", "inf", "61"):
        with pytest.raises(ValueError, match=r"delay_s=.* must be seconds in \[0, 60\]"):
            parse_chaos(f"delay=0.1,delay_s={bad}")


def test_a_ray_cluster_needs_a_reachable_store():
    with pytest.raises(SnnError, match="cannot reach an embedded Valkey"):
        snn.train({**small(epochs=1), "runtime": {"engine": "ray", "address": "127.0.0.1:1"}}, save=False)
