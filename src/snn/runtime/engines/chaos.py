"""Chaos mode: deliver invocations twice, lose them, fail them and delay them, at random.

``dup=0.3,drop=0.1,fail=0.05,delay=0.01`` are probabilities per invocation
(``delay_s`` sets how long a delay lasts, ``seed`` the random source). The decisions
are made here, in the engine layer, from a seeded generator; failures are raised
inside the function, before or after it did its work.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, fields

from . import SETTLE_TIMEOUT, wait_all

MAX_DELAY_S = 60.0  # a delay is a slow function, not a lost one


@dataclass(frozen=True)
class Chaos:
    dup: float = 0.0
    drop: float = 0.0
    fail: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.05
    seed: int = 0

    @property
    def active(self) -> bool:
        return any((self.dup, self.drop, self.fail, self.delay))

    @property
    def text(self) -> str | None:
        """The settings that differ from the defaults, as ``parse_chaos`` reads them; ``None`` when inactive."""
        if not self.active:
            return None
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default)


def parse_chaos(text: str | None) -> Chaos:
    if not text:
        return Chaos()
    allowed = {f.name for f in fields(Chaos)}
    values = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name not in allowed:
            raise ValueError(f"chaos: unknown setting {name!r}; allowed: {', '.join(sorted(allowed))}")
        if name in values:
            raise ValueError(f"chaos: {name} is given twice; allowed: each setting once")
        try:
            values[name] = int(value) if name == "seed" else float(value)
        except ValueError:
            raise ValueError(f"chaos: {name}={value!r} is not a number") from None
        if name in ("dup", "drop", "fail", "delay") and not 0 <= values[name] < 1:
            raise ValueError(f"chaos: {name}={value} must be a probability in [0, 1)")
        if name == "delay_s" and not 0 <= values[name] <= MAX_DELAY_S:
            raise ValueError(f"chaos: delay_s={value} must be seconds in [0, {MAX_DELAY_S:g}]")
    return Chaos(**values)


class Lost:
    """An invocation that was never delivered: it never finishes."""


class ChaosEngine:
    def __init__(self, inner, chaos: Chaos):
        self.inner, self.chaos = inner, chaos
        self.name, self.shared_memory = inner.name, inner.shared_memory
        self._rng = random.Random(chaos.seed)
        self.injected: Counter = Counter()
        self._running: list = []  # every delivery since the last settle, the extra ones included

    def submit(self, events):
        c, rng = self.chaos, self._rng
        slots, real, extra = [], [], []
        for event in events:
            if rng.random() < c.drop:
                self.injected["drop"] += 1
                slots.append(Lost())
                continue
            injected = {}
            if rng.random() < c.fail:
                self.injected["fail"] += 1
                injected["fail"] = rng.choice(("before", "after"))
            if rng.random() < c.delay:
                self.injected["delay"] += 1
                injected["delay"] = c.delay_s
            if rng.random() < c.dup:
                self.injected["dup"] += 1
                extra.append(event)  # the second delivery of the same event, untouched
            slots.append(len(real))
            real.append({**event, "chaos": injected} if injected else event)
        handles = self.inner.submit(real + extra) if real or extra else []
        self._running += handles
        return [s if isinstance(s, Lost) else handles[s] for s in slots]

    def wait(self, handles, timeout):
        real = [h for h in handles if not isinstance(h, Lost)]
        if real:
            return self.inner.wait(real, timeout)
        if timeout:
            time.sleep(timeout)  # the lost never answer
        return set()

    def outcome(self, handle):
        return self.inner.outcome(handle)

    def running(self) -> list:
        """Every delivery since the last settle that has not ended yet (the extra ones included)."""
        if self._running:
            done = self.inner.wait(self._running, 0)
            self._running = [h for h in self._running if h not in done]
        return list(self._running)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait for every delivery still running, so that what it did is on the ledger and none
        reads a key after its step is deleted: the extra deliveries, and also those the
        coordinator gave up on when a live unit was slower than its timeout and was retried."""
        if self._running:
            wait_all(self.inner, self._running, timeout)
            self._running = []

    def close(self):
        self.settle()
        self.inner.close()
