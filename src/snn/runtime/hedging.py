"""Hedged requests: when to send a second copy of a unit that has not answered.

Real platforms lose invocations and have stragglers ("The Tail at Scale", Dean and
Barroso, 2013). Waiting for the fixed ``unit_timeout`` before each retry made a lost
unit stall its step for a minute. Instead the coordinator learns, as the run goes,
how long each stage kind (phase and layer) goes without progress, and sends a
speculative copy of a unit once neither it nor its stage has moved for ``factor``
times the observed 95th percentile (never sooner than ``floor``). The first delivery
to finish wins; the others find its done record and count as duplicates, which the
store's set-if-absent writes make harmless. ``unit_timeout`` stays as the hard ceiling.

Progress, not time since sending: with fewer workers than units (a thread pool, a
small cluster) the last units of a stage wait in a queue while the others run, so
time since sending says nothing about loss. What is learned is, per stage kind, the
wait for the first result of a stage (a unit's whole latency) and, apart from it,
the intervals between the results that follow.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW = 256  # intervals kept per kind: recent enough to follow a run that slows down
MIN_SAMPLES = 8  # fewer than this for a kind: use every kind's intervals together
FIRST = 10.0  # seconds before the first hedge of a run that has seen no unit finish (cold starts)


@dataclass(frozen=True)
class Hedging:
    factor: float = 1.5  # hedge at factor x the quantile; 0 turns hedging off
    floor: float = 0.005  # seconds: never sooner, so that the noise of a fast stage sends no copies
    quantile: float = 0.95  # where "The Tail at Scale" sends its hedges

    @property
    def active(self) -> bool:
        return self.factor > 0


class Latencies:
    """Seconds without progress that each kind of wait took, and the hedge delay they give."""

    def __init__(self, hedging: Hedging, ceiling: float):
        self.hedging, self.ceiling = hedging, ceiling
        self._seen: dict[tuple, deque] = {}
        self._all: deque = deque(maxlen=WINDOW)
        self._quantile: dict[tuple | None, float] = {}  # the last computed, per kind (None: all kinds)
        self._fresh: dict[tuple | None, int] = {}  # samples added since

    def add(self, kind: tuple, seconds: float) -> None:
        self._seen.setdefault(kind, deque(maxlen=WINDOW)).append(seconds)
        self._all.append(seconds)
        self._fresh[kind] = self._fresh.get(kind, 0) + 1
        self._fresh[None] = self._fresh.get(None, 0) + 1

    def hedge_after(self, kind: tuple) -> float:
        """Seconds without progress before a speculative copy goes out.

        ``kind`` is ``(phase, layer, first)``. Until it has samples enough, the intervals
        after a stage's first result borrow the first results' scale (of the same stage
        kind: the cost of one of its units), and those borrow every kind's.
        """
        key, samples = None, self._all
        for candidate in (kind, (*kind[:-1], True)):
            own = self._seen.get(candidate)
            if own is not None and len(own) >= MIN_SAMPLES:
                key, samples = candidate, own
                break
        if not samples:
            return min(FIRST, self.ceiling)
        # Sorted again once a sixteenth of the window is new (every sample while there are few):
        # this runs at every stage, and a quantile a few samples old is as good.
        if key not in self._quantile or self._fresh.get(key, 0) > len(samples) // 16:
            ordered = sorted(samples)
            self._quantile[key] = ordered[min(len(ordered) - 1, int(self.hedging.quantile * len(ordered)))]
            self._fresh[key] = 0
        return min(self.ceiling, max(self.hedging.floor, self.hedging.factor * self._quantile[key]))
