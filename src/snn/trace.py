"""Where a run's time went, from its invocation ledger (``invocations.csv``).

Each invocation's duration splits into ``wait`` (sent by the coordinator until the
function started: queueing, cold start, transfer), ``load`` (reading inputs from the
store), ``compute``, ``store_write`` and ``merge`` (combining other units' outputs).
Timestamps come from each worker's clock: on one machine they agree; across machines
``wait`` is only as good as their clock synchronisation.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .errors import SnnError
from .runtime.ledger import PARTS, read_ledger


def load_records(run_dir: str | Path) -> list[dict]:
    """The run's ledger, bounded in size and checked row by row: a ``RunFolderError`` if it is not one snn wrote."""
    return with_durations(read_ledger(Path(run_dir) / "invocations.csv"))


def with_durations(records: list[dict]) -> list[dict]:
    """Add ``duration`` (send to end) to ledger records; a record without ``sent`` was sent as it started."""
    for r in records:
        if r.get("sent") is None:
            r["sent"] = r["start"]
        r["duration"] = r["end"] - r["sent"]
    return records


def summarize(records: list[dict], by: str) -> list[dict]:
    """Per group (``phase``, ``layer`` or ``worker``): count, p50, p95 and total of each part."""
    groups: dict = defaultdict(list)
    for r in records:
        if r["status"] == "ok":
            groups[r[by] if by != "layer" else int(r["layer"])].append(r)
    table = []
    for key in sorted(groups, key=str):
        rows = groups[key]
        entry = {by: key, "count": len(rows)}
        for part in ("duration", *PARTS):
            values = np.array([r[part] for r in rows])
            entry[part] = {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
                           "total": float(values.sum())}
        table.append(entry)
    return table


def critical_path(records: list[dict], step: int | None = None) -> tuple[int, list[dict], float]:
    """The slowest unit of every stage of ``step`` (default: the last one), in stage order.

    Stages of a step run one after the other, so these units are the step's critical
    path. Returns ``(step, path, span)`` with ``span`` from the first send to the last end.
    Only the deliveries that counted are on it, one a unit (the one that wrote its done
    record): a duplicate may still be running after its stage has moved on.
    """
    ok = [r for r in records if r["status"] == "ok"]
    if not ok:
        raise SnnError("the ledger has no completed invocations")
    step = int(max(r["step"] for r in ok)) if step is None else step
    mine = [r for r in ok if int(r["step"]) == step]
    if not mine:
        raise SnnError(f"step {step} is not in the ledger; it has steps {int(min(r['step'] for r in ok))}.."
                       f"{int(max(r['step'] for r in ok))}")
    stages: dict = defaultdict(list)
    for r in [r for r in mine if not r["duplicate"]] or mine:
        stages[(r["phase"], int(r["layer"]))].append(r)
    path = [max(rows, key=lambda r: r["end"]) for rows in sorted(stages.values(), key=lambda rs: min(r["sent"] for r in rs))]
    counted = [r for rows in stages.values() for r in rows]
    span = max(r["end"] for r in counted) - min(r["sent"] for r in counted)
    return step, path, span


def hedges(records: list[dict], summary: dict) -> dict:
    """The speculative copies of a run, from its ledger (and what they saved, from its summary when it has one).

    A copy "finished first" when its record is not a duplicate: it wrote the unit's done
    record before any other delivery. ``saved_seconds`` is how much sooner those units
    finished: than their first delivery did (a straggler), or than the unit timeout would
    have resent them (a lost one). Counts are of deliveries that ran, chaos duplicates too.
    """
    ok = [r for r in records if r["status"] == "ok"]
    copies = [r for r in ok if r.get("speculative") is True]
    saved = summary.get("speculative_saved_seconds")
    return {"sent": len(copies), "won": sum(not r["duplicate"] for r in copies),
            "saved_seconds": float(saved) if isinstance(saved, (int, float)) else None,
            "retries": sum(r["attempt"] > 0 and not r.get("speculative") for r in ok),
            "lost": sum(r["status"] == "lost" for r in records),
            "duplicates": sum(bool(r["duplicate"]) for r in ok)}
