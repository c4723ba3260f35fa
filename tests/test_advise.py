import json

import pytest
from typer.testing import CliRunner

from conftest import EXAMPLES
from snn.advise import Option, Probe, fit_workers, options, recommend
from snn.cli import app
from snn.cost import load_prices
from snn.errors import SnnError


def probe(k, t, compute=0.001):
    return Probe(f"data:{k}", k, t, compute, {m: 1e-6 for m in (512, 1024, 1769, 3008)})


def test_fit_recovers_a_known_law():
    a, b = fit_workers([probe(1, 0.010 + 0.030), probe(2, 0.010 + 0.015), probe(4, 0.010 + 0.0075)])
    assert a == pytest.approx(0.010) and b == pytest.approx(0.030)


def test_options_stretch_compute_below_one_vcpu():
    prices = load_prices()
    (p,) = [probe(1, 0.010, compute=0.004)]
    by_memory = {o.memory_mb: o for o in options([p], 100, prices)}
    assert by_memory[1769].seconds == pytest.approx(1.0)
    assert by_memory[3008].seconds == pytest.approx(1.0)  # no faster above one vCPU
    assert by_memory[512].seconds == pytest.approx(100 * (0.010 + 0.004 * (1769 / 512 - 1)))


def test_recommend_by_objective_and_limits():
    opts = [Option("network", 1769, 10.0, 0.50), Option("data:4", 1769, 4.0, 2.00), Option("layer", 512, 30.0, 0.10)]
    assert recommend(opts, "time", None, None).granularity == "data:4"
    assert recommend(opts, "cost", None, None).granularity == "layer"
    assert recommend(opts, "perf-per-dollar", None, None).granularity == "layer"  # 1/(30 x 0.10) is the most
    assert recommend(opts, "time", None, 1.0).granularity == "network"
    assert recommend(opts, "cost", 12.0, None).granularity == "network"
    with pytest.raises(SnnError, match="no probed configuration meets"):
        recommend(opts, "time", 1.0, None)
    with pytest.raises(SnnError, match="allowed: time, cost, perf-per-dollar"):
        recommend(opts, "speed", None, None)


def test_advise_on_the_cat_network(data_root):
    runner = CliRunner()
    args = ["advise", str(EXAMPLES / "catvnoncat-4layer.json"), "--data", str(data_root), "--probe-epochs", "3"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Words, not lines: rich wraps at the terminal's width, and the numbers are measured. The JSON says the rest.
    words = " ".join(result.output.split())
    assert "Recommendation: --granularity" in words and "Model check: fitted t(K) =" in words
    out = json.loads(runner.invoke(app, [*args, "--json", "--objective", "cost"], catch_exceptions=False).output)
    check = out["check"]
    assert check["held_out"] == "data:3" and check["fitted_on"] == ["data:1", "data:2"]
    assert check["error"] == pytest.approx(check["predicted_step_seconds"] / check["measured_step_seconds"] - 1)
    assert out["steps"] == 2500 and out["recommendation"]["predicted_usd"] > 0
