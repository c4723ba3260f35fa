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

import math
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from .documents import parse_document, read_document, schema_problem
from .errors import SnnError

DEFAULT_PRICES = "aws-2026-11.json"
MAX_PRICES_BYTES = 64 << 10  # the shipped table is under 1 KB
PRICES_HELP = f"help: see snn/prices/{DEFAULT_PRICES} for the fields and what each allows"

# Every price is a finite number of dollars, bounded so that any ledger's cost stays finite.
Usd = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
Megabytes = Annotated[int, Field(ge=1, le=1 << 20)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,40}$")]


class _Table(BaseModel):
    # strict: "0.2" is not a price and true is not 1; an unknown field is a typo, not something to ignore
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class MemoryRange(_Table):
    min: Megabytes
    max: Megabytes

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); allowed: min <= max")
        return self


class LambdaPrices(_Table):
    request_per_million: Usd
    gb_second: Annotated[dict[Name, Usd], Field(min_length=1, max_length=16)]  # by architecture
    billing_granularity_ms: Annotated[int, Field(ge=1, le=3_600_000)]
    memory_mb: MemoryRange
    mb_per_vcpu: Annotated[float, Field(gt=0, le=1 << 20, allow_inf_nan=False)]


class Hourly(_Table):
    name: Text
    usd: Usd


class PriceTable(_Table):
    version: Name
    date: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    source: Text
    currency: Literal["USD"] = "USD"
    lambda_: LambdaPrices = Field(alias="lambda")
    store_per_hour: Hourly
    vm_per_hour: Hourly


def load_prices(path: str | Path | None = None) -> dict:
    """The price table at ``path`` (the shipped one by default) as plain data, once its schema holds.

    The file is read only if it is a regular file of at most ``MAX_PRICES_BYTES`` (never a FIFO or a device),
    as plain JSON/YAML; anything else is one ``SnnError`` naming the file and, for a bad field, that field."""
    if path:
        source = str(path)
        try:
            data = read_document(path, "price table", SnnError, MAX_PRICES_BYTES)
        except SnnError as e:
            raise SnnError(_named(str(e))) from None
    else:
        source = DEFAULT_PRICES
        text = resources.files("snn.prices").joinpath(DEFAULT_PRICES).read_text(encoding="utf-8")
        data = parse_document(text, source, as_yaml=False, error=SnnError)
    try:
        return PriceTable.model_validate(data).model_dump(by_alias=True)
    except ValidationError as e:
        raise SnnError(f"price table {source}: {_problem(e)}; {PRICES_HELP}") from None


def _named(message: str) -> str:
    """A reading error as a price table's: what it is, and where to look."""
    message = message if "price table" in message else f"price table {message}"
    return message if "help:" in message else f"{message}; {PRICES_HELP}"


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "missing":
        return f"missing {'.'.join(map(str, first['loc']))!r}"
    return schema_problem(error)


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
