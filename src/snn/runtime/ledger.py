"""The invocation ledger: one record per delivery, and the run's counters."""

from __future__ import annotations

import csv
import io
from collections import Counter

FIELDS = ("phase", "layer", "unit", "step", "attempt", "duplicate", "status", "worker", "sent", "start", "end",
          "bytes_in", "bytes_out", "wait", "load", "compute", "store_write", "merge", "speculative")
PARTS = ("wait", "load", "compute", "store_write", "merge")  # where an invocation's time went
INTEGERS = ("layer", "unit", "step", "attempt", "bytes_in", "bytes_out")


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

    def settle_hedges(self) -> None:
        """What the copies that won saved, once every delivery of their steps is on the ledger.

        Against the unit's first delivery when it finished later (a straggler), else against
        the moment the unit timeout would have sent the unit again (a lost one).
        """
        saved = 0.0
        for unit, timeout_at in self._won.items():
            ends = self._ends.get(unit, {})
            copy, first = ends.get("copy"), ends.get("first")
            if copy is not None:
                saved += max(0.0, (first if first is not None else timeout_at) - copy)
        self.counts["speculative_saved_ms"] += round(saved * 1e3)
        self._won, self._ends = {}, {}

    def resume(self, records: list[dict], counts: dict[str, int]) -> None:
        """Go on from a previous process's records (``invocations.csv`` as read back) and counters."""
        for r in records:
            self.add({k: int(v) if k in INTEGERS and v is not None else v for k, v in r.items()})
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
