"""The invocation timeline, aggregated so it stays readable at any number of invocations.

Drawn one bar per invocation, a neuron-by-neuron run (167,500 invocations for the cat
4-layer network) is one solid bar at any width a screen has. Here each (phase, layer)
pair of the ledger is a lane, in the order the run first met them (forward layer 1,
2, ..., the loss, backward from the last layer down), and a lane's value in a time bin
is its occupancy: the seconds its invocations ran inside the bin over the bin's width
(1.0: one of them running all the time, 2.0: two at once).

``invocations.csv`` is read once per version of the file into columns (a few
numbers per row, at most MAX_LEDGER_BYTES of its tail), never as one dict per row.
"""

from __future__ import annotations

import csv
import io
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RunFolderError
from .files import read_tail

MAX_LEDGER_BYTES = 256 << 20  # the tail of a ledger that is read: about 1.1 million invocations
MAX_BINS = 2000
NEEDED = ("phase", "layer", "step", "attempt", "duplicate", "worker", "start", "end")


@dataclass(frozen=True)
class Invocations:
    """A ledger as columns: one entry per delivery, times in seconds from the first one's start."""

    lanes: tuple[tuple[str, int], ...]  # (phase, ledger layer), in the order the run first met them
    lane: np.ndarray  # int32: each invocation's lane
    step: np.ndarray  # int64
    start: np.ndarray  # float64
    end: np.ndarray  # float64
    flagged: np.ndarray  # bool: a retry (attempt > 0) or a duplicate delivery
    workers: int
    truncated: bool  # only the tail of a longer ledger was read


def read_invocations(path: Path, max_bytes: int = MAX_LEDGER_BYTES) -> Invocations:
    """``invocations.csv`` as columns; a ``RunFolderError`` of one line if it is not a ledger snn wrote."""
    text, truncated = _tail(path, max_bytes)
    rows = csv.reader(io.StringIO(text))
    head = next(rows, [])
    missing = [k for k in NEEDED if k not in head]
    if missing:
        raise RunFolderError(f"{path}: no column(s) {', '.join(missing)}; it is not a ledger snn wrote")
    at = [head.index(k) for k in NEEDED]
    lanes: dict[tuple[str, int], int] = {}
    workers: set[str] = set()
    lane, step, start, end, flagged = array("i"), array("q"), array("d"), array("d"), array("b")
    for n, row in enumerate(rows, start=2):
        try:
            phase, layer, s, attempt, duplicate, worker, t0, t1 = (row[i] for i in at)
            if not t0 or not t1:  # a delivery that never ran has no times
                continue
            key = (phase[:40], int(layer))
            lane.append(lanes.setdefault(key, len(lanes)))
            step.append(int(s)), start.append(float(t0)), end.append(float(t1))
            flagged.append(duplicate == "True" or int(attempt) > 0)
            workers.add(worker)
        except (ValueError, IndexError, OverflowError):
            raise RunFolderError(f"{path}: row {n} is not an invocation snn wrote") from None
    begin, finish = np.frombuffer(start), np.frombuffer(end)
    if not (np.isfinite(begin).all() and np.isfinite(finish).all() and (finish >= begin).all()):
        raise RunFolderError(f"{path}: an invocation ends before it starts, or at no finite time")
    t0 = begin.min() if len(begin) else 0.0
    return Invocations(tuple(lanes), np.frombuffer(lane, np.int32), np.frombuffer(step, np.int64), begin - t0,
                       finish - t0, np.frombuffer(flagged, np.int8).astype(bool), len(workers), truncated)


def _tail(path: Path, max_bytes: int) -> tuple[str, bool]:
    try:
        raw, truncated = read_tail(path, max_bytes)
        return raw.decode("utf-8"), truncated
    except OSError as e:
        raise RunFolderError(f"{path}: cannot be read ({e.strerror or e}); help: serve a run folder that snn "
                             "wrote, holding plain files") from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not UTF-8 text; it is not a ledger snn wrote") from None


def busy_until(edges: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each time ``t`` of ``edges``, the seconds the intervals ``[start, end]`` ran before ``t``.

    That is sum_i clip(t - s_i, 0, e_i - s_i) = sum over s_i < t of (t - s_i), less the same
    over e_i < t: sorted starts and ends with their running sums give it for all edges at once.
    """
    s, e = np.sort(start), np.sort(end)
    sums_s, sums_e = np.concatenate([[0.0], np.cumsum(s)]), np.concatenate([[0.0], np.cumsum(e)])
    ns, ne = np.searchsorted(s, edges), np.searchsorted(e, edges)
    return (ns * edges - sums_s[ns]) - (ne * edges - sums_e[ne])


def lanes_json(inv: Invocations, step_from: int | None, step_to: int | None, bins: int, n_layers: int) -> dict:
    """What ``/run/timeline`` answers: each lane's occupancy in ``bins`` bins over the steps asked for."""
    bins = max(1, min(bins, MAX_BINS))
    steps = [int(inv.step.min()), int(inv.step.max())] if len(inv.step) else [0, 0]
    lo = steps[0] if step_from is None else max(steps[0], step_from)
    hi = steps[1] if step_to is None else min(steps[1], step_to)
    mine = (inv.step >= lo) & (inv.step <= hi)
    start, end, lane = inv.start[mine], inv.end[mine], inv.lane[mine]
    t0, t1 = (float(start.min()), float(end.max())) if len(start) else (0.0, 0.0)
    edges = np.linspace(t0, max(t1, t0 + 1e-9), bins + 1)
    width = edges[1] - edges[0]
    lanes = []
    for k, (phase, layer) in enumerate(inv.lanes):
        s, e = start[lane == k], end[lane == k]
        if not len(s):
            continue
        occupancy = np.diff(busy_until(edges, s, e)) / width
        lanes.append({"phase": phase, "layer": layer, "label": label(phase, layer, n_layers),
                      "invocations": int(len(s)), "busy_seconds": round(float((e - s).sum()), 6),
                      "occupancy": np.round(occupancy, 4).tolist()})
    flagged = np.histogram(start[inv.flagged[mine]], bins=edges)[0]
    return {"steps": steps, "step_from": lo, "step_to": hi, "seconds": [t0, t1], "bins": bins, "lanes": lanes,
            "flagged": flagged.tolist(), "invocations": int(mine.sum()), "workers": inv.workers,
            "truncated": inv.truncated}


def label(phase: str, layer: int, n_layers: int) -> str:
    """A lane's name: 'forward · layer 1' (1-based, as the page names layers), or the phase alone (the loss)."""
    return f"{phase} · layer {layer + 1}" if 0 <= layer < n_layers else phase
