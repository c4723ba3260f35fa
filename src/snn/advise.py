"""The configuration advisor: probe a few short runs, fit a model, recommend.

Probes train a few epochs at several granularities and worker counts on the chosen
engine. Two models are fitted on them:

* time versus workers, for ``data:K``: ``t(K) = a + b / K`` per step (least squares);
* time versus Lambda memory: the compute part of a step (its critical path's compute,
  from the ledger) stretches by ``mb_per_vcpu / memory`` below one vCPU, the rest
  (waiting, the store) does not.

Cost comes from the cost model applied to the probe's ledger, scaled to the full run.
One data-parallel probe is held out of the fit and its predicted and measured times
are reported, so the model's error is on the page, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Config
from .cost import lambda_cost, load_prices, stretch
from .errors import SnnError
from .runtime.engines.chaos import Chaos
from .runtime.plan import parse_granularity
from .trace import critical_path, with_durations

MEMORY_SIZES = (512, 1024, 1769, 3008)
OBJECTIVES = ("time", "cost", "perf-per-dollar")


@dataclass(frozen=True)
class Probe:
    granularity: str
    workers: int
    step_seconds: float  # wall time per training step
    compute_seconds: float  # compute on the critical path of a step
    usd_per_step: dict  # memory MB -> Lambda cost of one step at that size


@dataclass(frozen=True)
class Option:
    granularity: str
    memory_mb: int
    seconds: float  # predicted for the whole run
    usd: float

    @property
    def perf_per_dollar(self) -> float:
        return 1.0 / (self.seconds * max(self.usd, 1e-12))


def run_probe(config: Config, granularity: str, epochs: int, data_root=None) -> Probe:
    from . import run as run_module

    if epochs < 2:
        raise SnnError("a probe needs at least 2 epochs: the first one is warm-up")
    cfg = config.model_copy(update={
        "training": config.training.model_copy(update={"epochs": epochs, "patience": None, "threshold": None}),
        "runtime": config.runtime.model_copy(update={"granularity": parse_granularity(granularity), "chaos": Chaos(),
                                                     "store": config.runtime.store or "memory"
                                                     if config.runtime.engine == "local" else config.runtime.store,
                                                     "checkpoint_every": 0, "budget_usd": None}),
    })
    run = run_module.train(cfg, data_root, save=False)
    steps = len({int(r["step"]) for r in run.ledger.records})
    records = with_durations([dict(r) for r in run.ledger.records])
    _, path, _ = critical_path(records)
    prices = load_prices()
    per_step = {m: lambda_cost(records, 0.0, m, prices=prices).lambda_usd / steps for m in MEMORY_SIZES}
    workers = int(granularity.split(":")[1]) if granularity.startswith("data:") else 1
    # Steady state: the first epoch also pays for writing the data and warming caches.
    seconds = run.history[-1]["seconds"] - run.history[0]["seconds"]
    return Probe(granularity, workers, seconds / (epochs - 1) / (steps / epochs),
                 sum(r["compute"] for r in path), per_step)


def fit_workers(probes: list[Probe]) -> tuple[float, float]:
    """Least squares ``t = a + b / K`` over data-parallel probes."""
    K = np.array([p.workers for p in probes], dtype=float)
    t = np.array([p.step_seconds for p in probes])
    A = np.column_stack([np.ones_like(K), 1 / K])
    (a, b), *_ = np.linalg.lstsq(A, t, rcond=None)
    return float(a), float(b)


def at_memory(step_seconds: float, compute_seconds: float, memory_mb: int, prices: dict) -> float:
    return step_seconds + compute_seconds * (stretch(memory_mb, prices) - 1)


def steps_of(config: Config, n_train: int) -> int:
    b = config.training.batch_size
    per_epoch = 1 if not b or config.training.strategy != "sync" else -(-n_train // b)
    return config.training.epochs * per_epoch


def options(probes: list[Probe], total_steps: int, prices: dict) -> list[Option]:
    out = []
    for p in probes:
        for m in MEMORY_SIZES:
            seconds = at_memory(p.step_seconds, p.compute_seconds, m, prices) * total_steps
            usd = p.usd_per_step[m] * total_steps + seconds / 3600 * prices["store_per_hour"]["usd"]
            out.append(Option(p.granularity, m, seconds, usd))
    return out


def recommend(opts: list[Option], objective: str, deadline: float | None, budget: float | None) -> Option:
    if objective not in OBJECTIVES:
        raise SnnError(f"objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    fits = [o for o in opts if (deadline is None or o.seconds <= deadline) and (budget is None or o.usd <= budget)]
    if not fits:
        raise SnnError("no probed configuration meets the deadline and budget; "
                       f"the fastest needs {min(o.seconds for o in opts):.0f} s, the cheapest {min(o.usd for o in opts):.4f} USD")
    key = {"time": lambda o: (o.seconds, o.usd), "cost": lambda o: (o.usd, o.seconds),
           "perf-per-dollar": lambda o: -o.perf_per_dollar}[objective]
    return min(fits, key=key)
