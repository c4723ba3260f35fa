"""The invocation ledger: one record per delivery, and the run's counters."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..documents import regular_size, schema_problem
from ..errors import RunFolderError
from .events import EVENTS

MAX_LEDGER_BYTES = 1 << 30  # a ledger of millions of invocations
FIELDS = ("phase", "layer", "unit", "step", "attempt", "duplicate", "status", "worker", "sent", "start", "end",
          "bytes_in", "bytes_out", "wait", "load", "compute", "store_write", "merge", "speculative")
PARTS = ("wait", "load", "compute", "store_write", "merge")  # where an invocation's time went

Index = Annotated[int, Field(ge=0, le=10**12)]  # a layer, unit, step or attempt
Count = Annotated[int, Field(ge=0, le=1 << 62)]  # bytes
Seconds = Annotated[float, Field(ge=0, le=1e12)]  # a part of a duration, or a Unix time


INDEXES = ("layer", "unit", "step", "attempt", "bytes_in", "bytes_out")
TIMES = ("sent", "start", "end", *PARTS)


class LedgerRow(BaseModel):
    """One ``invocations.csv`` record as snn writes it: every reader of a ledger checks rows against this."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    phase: Literal[tuple(EVENTS)]  # type: ignore[valid-type]
    layer: Index
    unit: Index
    step: Index
    attempt: Index
    duplicate: bool
    status: Literal["ok", "failed", "lost"]
    worker: Annotated[str, Field(pattern=r"^[ -~]{0,200}$")] = ""  # host:pid:thread, printable ASCII
    sent: Seconds | None = None  # a delivery the coordinator recorded itself has no send time of a worker's
    start: Seconds
    end: Seconds
    bytes_in: Count = 0
    bytes_out: Count = 0
    wait: Seconds = 0.0
    load: Seconds = 0.0
    compute: Seconds = 0.0
    store_write: Seconds = 0.0
    merge: Seconds = 0.0
    speculative: bool = False


def read_ledger(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """``invocations.csv``, bounded in size and checked row by row against ``LedgerRow``: the one reader of a ledger
    (trace, cost, report, the service and a resume). A ``RunFolderError`` of one line if it is not one snn wrote."""
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    if not path.exists():
        raise RunFolderError(f"{path}: not found; help: only runs through the runtime (a granularity other than "
                             "network, another engine, or --store) have an invocation ledger")
    if regular_size(path, RunFolderError) > MAX_LEDGER_BYTES:
        raise RunFolderError(f"{path}: larger than {MAX_LEDGER_BYTES} bytes; it is not one snn wrote")
    rows, n = [], 1
    changed = "help: the ledger was changed after the run wrote it"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for n, raw in enumerate(reader, start=2):
                if None in raw or None in raw.values():  # more fields than the header names, or fewer
                    raise RunFolderError(f"{path}: row {n} has {'more' if None in raw else 'fewer'} fields than "
                                         f"its header's {len(reader.fieldnames)}; {changed}")
                rows.append(LedgerRow.model_validate({k: _cell(k, v) for k, v in raw.items() if v != ""}).model_dump())
    except ValidationError as e:
        raise RunFolderError(f"{path}: row {n}: {schema_problem(e)}; {changed}") from None
    except (UnicodeDecodeError, csv.Error, OSError) as e:
        raise RunFolderError(f"{path}: {' '.join(str(e).split())[:200]}; {changed}") from None
    return rows


def _cell(field: str, text: str):
    """A cell as snn writes it: a whole number as digits (``1e3`` is no step), a time as a float, a flag as
    True/False; anything else is left as text for the schema to refuse."""
    if field in INDEXES:
        return int(text) if text.isascii() and text.isdigit() else text
    if text in ("True", "False"):
        return text == "True"
    if field in TIMES:
        try:
            return float(text)
        except ValueError:
            return text
    return text


class Ledger:
    def __init__(self):
        self.records: list[dict] = []
        self.counts: Counter = Counter()  # retries, lost_and_retried, failed, speculative, speculative_won, ...
        self.duplicates = 0  # kept as records arrive: summary() runs after every epoch
        self._won: dict[tuple, float] = {}  # unit whose copy finished first -> when the timeout would have resent it
        self._ends: dict[tuple, dict] = {}  # unit -> ends of its first and its copies' deliveries, this epoch

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.duplicates += bool(record.get("duplicate"))
        if self._won and record.get("status") == "ok":
            key = (record["step"], record["phase"], record["layer"], record["unit"])
            if key in self._won:
                ends = self._ends.setdefault(key, {"copy": None, "first": None})
                kind = "copy" if record.get("speculative") and not record.get("duplicate") else "first"
                if kind == "copy" or not record.get("speculative"):
                    ends[kind] = record["end"] if ends[kind] is None else min(ends[kind], record["end"])

    def hedge_won(self, unit: tuple, timeout_at: float) -> None:
        """A speculative copy of ``unit`` (step, phase, layer, unit) finished first."""
        self._won[unit] = timeout_at

    def settle_hedges(self, final: bool = True) -> None:
        """What the copies that won saved, once their stragglers' deliveries are on the ledger.

        Against the unit's first delivery when it finished later (a straggler), else against
        the moment the unit timeout would have sent the unit again (a lost one). Not ``final``:
        only the units whose first delivery has ended; the others wait for it (or the run's end).
        """
        saved, waiting = 0.0, {}
        for unit, timeout_at in self._won.items():
            ends = self._ends.get(unit, {})
            copy, first = ends.get("copy"), ends.get("first")
            if first is None and not final:
                waiting[unit] = timeout_at
                continue
            if copy is not None:
                saved += max(0.0, (first if first is not None else timeout_at) - copy)
        self.counts["speculative_saved_ms"] += round(saved * 1e3)
        self._won = waiting
        self._ends = {unit: self._ends[unit] for unit in waiting if unit in self._ends}

    def resume(self, records: list[dict], counts: dict[str, int]) -> None:
        """Go on from a previous process's records (``invocations.csv`` as ``read_ledger`` returns it) and counters."""
        for r in records:
            self.add(r)
        self.counts.update({k: int(v) for k, v in counts.items()})

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def summary(self) -> dict:
        return {
            "invocations": len(self.records),
            "retries": self.counts["retries"],
            "duplicates_suppressed": self.duplicates,
            "lost_and_retried": self.counts["lost_and_retried"],
            "failures_retried": self.counts["failed"],
            "speculative": self.counts["speculative"],
            "speculative_won": self.counts["speculative_won"],
            "speculative_saved_seconds": self.counts["speculative_saved_ms"] / 1e3,
        }

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.records)
        return out.getvalue()
