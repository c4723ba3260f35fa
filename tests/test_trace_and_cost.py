"""Where the time went, and what it would cost: on a ledger whose answer is known."""

import csv
import json

import pytest
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.cost import billed_seconds, lambda_cost, load_prices
from snn.errors import SnnError
from snn.runtime.ledger import FIELDS
from snn.trace import critical_path, load_records, summarize
from test_runtime_parity import small

runner = CliRunner()


def row(phase, layer, unit, step, sent, start, end, status="ok", **parts):
    base = {"phase": phase, "layer": layer, "unit": unit, "step": step, "attempt": 0, "duplicate": False,
            "status": status, "worker": "host:1:w", "sent": sent, "start": start, "end": end,
            "bytes_in": 0, "bytes_out": 0, "wait": start - sent, "load": 0, "compute": end - start,
            "store_write": 0, "merge": 0}
    return {**base, **parts}


@pytest.fixture
def known_run(tmp_path):
    """Three billed invocations (10.4 ms, 2 ms, a 0.5 ms failure) and one lost one."""
    records = [
        row("forward", 0, 0, 0, 0.0, 0.001, 0.0114),
        row("forward", 0, 1, 0, 0.0, 0.002, 0.004),
        row("backward", 0, 0, 0, 0.0115, 0.0120, 0.0125, status="failed"),
        row("backward", 0, 0, 0, 0.0126, 0.0126, 0.0126, status="lost"),
    ]
    with open(tmp_path / "invocations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(records)
    (tmp_path / "summary.json").write_text(json.dumps({"wall_seconds": 3600.0}))
    return tmp_path


def test_cost_by_hand(known_run):
    # 2048 MB is above one vCPU (1769 MB): durations are billed as measured.
    # 10.4 ms -> 11 ms, 2 ms -> 2 ms, 0.5 ms -> 1 ms: 14 ms x 2 GB = 0.028 GB-s.
    c = lambda_cost(load_records(known_run), 3600.0, memory_mb=2048, arch="x86")
    assert c.requests == 3
    assert c.gb_seconds == pytest.approx(0.028, abs=1e-12)
    assert c.lambda_usd == pytest.approx(3 * 0.20 / 1e6 + 0.028 * 0.0000166667, rel=1e-12)
    assert c.store_usd == pytest.approx(0.032) and c.vm_usd == pytest.approx(0.08925)
    assert c.by_phase[("forward", 0)]["requests"] == 2
    # 512 MB is 512/1769 of a vCPU: 10.4 ms x 3.455 = 35.9 -> 36 ms, 2 -> 7 ms, 0.5 -> 2 ms; x 0.5 GB.
    small_fn = lambda_cost(load_records(known_run), 3600.0, memory_mb=512, arch="arm")
    assert small_fn.gb_seconds == pytest.approx(0.045 * 0.5, abs=1e-12)
    assert small_fn.lambda_usd == pytest.approx(3 * 0.20 / 1e6 + 0.0225 * 0.0000133334, rel=1e-12)


def test_cost_cli(known_run, tmp_path):
    result = runner.invoke(app, ["cost", str(known_run), "--memory", "2048", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["requests"] == 3 and out["gb_seconds"] == pytest.approx(0.028)
    assert out["total_usd"] == pytest.approx(out["lambda_usd"] + 0.032)
    text = runner.invoke(app, ["cost", str(known_run)]).output
    assert "forward:0" in text and "on a VM" in text
    prices = load_prices()
    prices["lambda"]["gb_second"]["x86"] = 1.0
    (tmp_path / "p.json").write_text(json.dumps(prices))
    mine = json.loads(runner.invoke(app, ["cost", str(known_run), "--memory", "2048", "--json",
                                          "--prices", str(tmp_path / "p.json")]).output)
    assert mine["lambda_usd"] == pytest.approx(3 * 0.2e-6 + 0.028)


def test_cost_errors(known_run, tmp_path):
    with pytest.raises(SnnError, match="Lambda allows 128 to 10240 MB"):
        lambda_cost(load_records(known_run), 1.0, memory_mb=64)
    with pytest.raises(SnnError, match="allowed: x86, arm"):
        lambda_cost(load_records(known_run), 1.0, arch="riscv")
    (tmp_path / "bad.json").write_text(json.dumps({"version": "x"}))
    with pytest.raises(SnnError, match="missing 'date'"):
        load_prices(tmp_path / "bad.json")
    assert billed_seconds(0.0000001, 2048, load_prices()) == 0.001  # at least one billing unit


def test_trace_summaries_and_critical_path(known_run):
    records = load_records(known_run)
    by_phase = {r["phase"]: r for r in summarize(records, "phase")}
    assert by_phase["forward"]["count"] == 2 and "backward" not in by_phase  # only completed calls
    assert by_phase["forward"]["duration"]["total"] == pytest.approx(0.0114 + 0.004)
    step, path, span = critical_path(records)
    assert step == 0 and [(r["phase"], r["unit"]) for r in path] == [("forward", 0)]
    assert span == pytest.approx(0.0114)
    with pytest.raises(SnnError, match="step 9 is not in the ledger"):
        critical_path(records, 9)


def test_the_critical_path_holds_the_deliveries_that_counted():
    # A duplicate of forward:0 still ran after the stage had moved on: it is not on the path.
    records = [row("forward", 0, 0, 0, 0.0, 0.001, 0.004), row("forward", 0, 0, 0, 0.0, 0.001, 0.030, duplicate=True),
               row("forward", 0, 1, 0, 0.0, 0.001, 0.005), row("loss", 1, 0, 0, 0.006, 0.006, 0.008)]
    step, path, span = critical_path(records)
    assert [(r["phase"], r["unit"], r["end"]) for r in path] == [("forward", 1, 0.005), ("loss", 0, 0.008)]
    assert span == pytest.approx(0.008)


def test_trace_of_a_real_run(tmp_path):
    snn.train({**small(epochs=2), "runtime": {"granularity": "neuron"}}, run_dir=tmp_path / "run")
    records = load_records(tmp_path / "run")
    for r in records:
        parts = r["wait"] + r["load"] + r["compute"] + r["store_write"] + r["merge"]
        assert parts == pytest.approx(r["end"] - r["sent"], abs=1e-6)
    step, path, _ = critical_path(records)
    assert step == 1 and [r["phase"] for r in path] == ["forward"] * 3 + ["loss"] + ["backward"] * 3
    result = runner.invoke(app, ["trace", str(tmp_path / "run")])
    assert result.exit_code == 0 and "Critical path of step 1" in result.output and "backward:0" in result.output
    assert runner.invoke(app, ["trace", str(tmp_path)]).exit_code != 0


def test_trace_counts_the_hedges_of_a_run_with_lost_deliveries(tmp_path):
    run = snn.train({**small(epochs=2), "runtime": {"granularity": "neuron", "chaos": "drop=0.2,seed=4"}},
                    run_dir=tmp_path / "run")
    result = runner.invoke(app, ["trace", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    h = json.loads(result.output)["hedges"]
    s = run.summary
    assert h["won"] == s["speculative_won"] > 0 and h["lost"] == s["lost_and_retried"] == 0
    assert 0 < h["saved_seconds"] == s["speculative_saved_seconds"]
    # A copy the chaos engine dropped never ran: the ledger has the ones that did.
    assert h["won"] <= h["sent"] <= s["speculative"]


def test_trace_and_cost_on_a_tampered_ledger_are_one_line(tmp_path):
    (tmp_path / "invocations.csv").write_text("phase,status,end\nforward,ok,yesterday\n")
    (tmp_path / "summary.json").write_text('{"wall_seconds": 1.0}')
    for command in ("trace", "cost"):
        result = runner.invoke(app, [command, str(tmp_path)])
        assert result.exit_code == 2 and "the ledger was changed after the run wrote it" in result.output
        assert "Traceback" not in result.output
