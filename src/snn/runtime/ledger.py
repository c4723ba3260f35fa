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

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.duplicates += bool(record.get("duplicate"))

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
