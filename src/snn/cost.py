"""What a run would cost on AWS Lambda, from its invocation ledger and a price table.

For every invocation: one request, plus its billed duration (rounded up to the
billing granularity) times the function's memory in GB, at the GB-second price of the
chosen architecture. A function's CPU share grows with its memory (one full vCPU at
``mb_per_vcpu``), so a duration measured on one full core is stretched by
``mb_per_vcpu / memory`` below that size; above it a single-threaded unit gets no
faster. Add the state store per hour of the run's wall time; compare with the same
wall time on a VM.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import SnnError

DEFAULT_PRICES = "aws-2026-11.json"


def load_prices(path: str | Path | None = None) -> dict:
    try:
        text = Path(path).read_text() if path else resources.files("snn.prices").joinpath(DEFAULT_PRICES).read_text()
        prices = json.loads(text)
        for key in ("version", "date", "source", "lambda", "store_per_hour", "vm_per_hour"):
            prices[key]
        return prices
    except (OSError, json.JSONDecodeError) as e:
        raise SnnError(f"price table {path}: cannot be read ({e})") from None
    except KeyError as e:
        raise SnnError(f"price table {path}: missing {e}; see {DEFAULT_PRICES} for the fields") from None


def stretch(memory_mb: int, prices: dict) -> float:
    """How much longer a unit measured on one full core runs at ``memory_mb``."""
    return max(1.0, prices["lambda"]["mb_per_vcpu"] / memory_mb)


def billed_seconds(duration_s: float, memory_mb: int, prices: dict) -> float:
    step = prices["lambda"]["billing_granularity_ms"]
    ms = duration_s * stretch(memory_mb, prices) * 1000
    return math.ceil(round(ms, 6) / step) * step / 1000


@dataclass(frozen=True)
class Cost:
    requests: int
    gb_seconds: float
    lambda_usd: float
    store_usd: float
    vm_usd: float
    wall_seconds: float
    by_phase: dict  # (phase, layer) -> {"requests", "gb_seconds", "usd"}

    @property
    def total_usd(self) -> float:
        return self.lambda_usd + self.store_usd


def lambda_cost(records: list[dict], wall_seconds: float, memory_mb: int = 1769, arch: str = "x86",
                prices: dict | None = None) -> Cost:
    """The run's cost on Lambda. ``records`` are ledger rows with ``start`` and ``end``."""
    prices = prices or load_prices()
    lam = prices["lambda"]
    if arch not in lam["gb_second"]:
        raise SnnError(f"architecture {arch!r}; allowed: {', '.join(lam['gb_second'])}")
    lo, hi = lam["memory_mb"]["min"], lam["memory_mb"]["max"]
    if not lo <= memory_mb <= hi:
        raise SnnError(f"memory {memory_mb} MB; Lambda allows {lo} to {hi} MB")
    per_request, per_gbs = lam["request_per_million"] / 1e6, lam["gb_second"][arch]
    by_phase: dict = defaultdict(lambda: {"requests": 0, "gb_seconds": 0.0, "usd": 0.0})
    for r in records:
        if r.get("status", "ok") not in ("ok", "failed"):
            continue  # a lost invocation never ran, and is not billed
        gbs = billed_seconds(r["end"] - r["start"], memory_mb, prices) * memory_mb / 1024
        entry = by_phase[(r["phase"], int(r["layer"]))]
        entry["requests"] += 1
        entry["gb_seconds"] += gbs
        entry["usd"] += per_request + gbs * per_gbs
    requests = sum(e["requests"] for e in by_phase.values())
    gb_seconds = sum(e["gb_seconds"] for e in by_phase.values())
    hours = wall_seconds / 3600
    return Cost(requests, gb_seconds, requests * per_request + gb_seconds * per_gbs,
                hours * prices["store_per_hour"]["usd"], hours * prices["vm_per_hour"]["usd"],
                wall_seconds, dict(by_phase))
