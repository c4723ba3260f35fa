"""The coordinator: the original system's Launch and Trainer, as one loop.

For every step it plans the stages of the chosen granularity, invokes each stage's
units through the engine, waits at a barrier until every unit's ``done`` record is
in the store (retrying units that fail or whose result does not arrive in time),
reads the results in unit order, and moves on. Step ``s`` reads parameters version
``s`` and its units write version ``s + 1``; when a step is over its keys are deleted
by name.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..core.network import NetworkSpec, Params, predictions
from ..core.training import SHUFFLE, EpochResult, Plan, batches, epoch_rng
from ..errors import SnnError
from .codec import decode_json, encode
from .events import Event, LocalEvent, MergeEvent, Train
from .functions import FUNCTIONS
from .keys import Keys
from .ledger import Ledger
from .plan import Granularity, shard_ranges
from .stores import get_arrays


class UnitFailure(SnnError):
    """A unit kept failing or never answered, past the retry limit."""


class StopRequested(SnnError):
    """``snn stop`` (or the store's stop flag) asked the run to end."""


class InvocationLimit(SnnError):
    """``--max-invocations`` was reached."""


@dataclass(frozen=True)
class Strategy:
    """How a step combines its workers: ``sync`` (with ``reducers`` = 1 for allreduce, K for
    scatter-reduce), or ``average``/``best``/``tree`` (every batch of an epoch in parallel)."""

    name: str = "sync"
    reducers: int = 1
    fan_in: int = 2


@dataclass(frozen=True)
class StepInputs:
    """What every unit of one step is given: the fields its event shares (``base``), and the ``Train`` in them."""

    base: dict
    train: Train

    def with_l2(self, cost: float, sumsq: float) -> float:
        """The cost plus lambda/(2m) ||W||^2, from the units' sums of squared weights."""
        return cost + self.train.l2 / (2 * self.train.m) * sumsq if self.train.l2 else cost


@dataclass(frozen=True)
class Limits:
    unit_timeout: float = 60.0
    max_retries: int = 8
    backoff: float = 0.01
    key_ttl: float | None = 3600.0
    max_invocations: int | None = None


class Coordinator:
    def __init__(self, spec: NetworkSpec, granularity: Granularity, engine, store, run_id: str,
                 optimizer, ledger: Ledger, limits: Limits = Limits(), strategy: Strategy = Strategy()):
        self.spec, self.g, self.engine, self.store = spec, granularity, engine, store
        self.strategy = strategy
        if strategy.name != "sync" and granularity.kind != "network":
            raise SnnError(f"strategy {strategy.name!r} trains each batch in one invocation; "
                           f"granularity {granularity.name!r} is for sync; help: leave --granularity out")
        self.keys, self.optimizer, self.ledger, self.limits = Keys(run_id), optimizer, ledger, limits
        self.units = granularity.units(spec) or [[(0, 0)]]
        self.slots = list(self._slots())
        self._written: list[str] = []  # outputs of the current step, deleted when it is over

    # ---- where each unit's parameters live

    def _slots(self):
        """``(layer, unit, indices into Params.flat)`` of every parameter unit."""
        if self.g.kind == "data" and self.strategy.reducers > 1:
            for r, (c0, c1) in enumerate(shard_ranges(self.spec.n_params, self.strategy.reducers)):
                yield 0, r, slice(c0, c1)
            return
        if self.g.units(self.spec) is None:
            yield 0, 0, slice(None)
            return
        for l, ranges in enumerate(self.units):
            for u, (r0, r1) in enumerate(ranges):
                yield l, u, self.spec.layout.unit_indices(l, r0, r1)

    def scatter(self, step: int, flat: np.ndarray, state: dict) -> None:
        k, out = self.keys, {}
        for l, u, idx in self.slots:
            out[k.param(step, l, u)] = encode(flat[idx])
            for name, arr in state.items():
                out[k.state(step, l, u, name)] = encode(arr if name == "t" else arr[idx])
        self.store.put_many(out, self.limits.key_ttl)

    def gather(self, step: int, flat: np.ndarray, state: dict) -> None:
        """Copy version ``step`` of every unit's parameters and state into ``flat`` and ``state``.

        All or nothing: everything is read before anything is copied, so a store that
        fails half way leaves ``flat`` and ``state`` at the last complete epoch.
        """
        names = list(state)
        read = [(l, u, idx, get_arrays(self.store, [self.keys.param(step, l, u)]
                                       + [self.keys.state(step, l, u, n) for n in names]))
                for l, u, idx in self.slots]
        for _, _, idx, arrays in read:
            flat[idx] = arrays[0]
            for name, arr in zip(names, arrays[1:]):
                if name == "t":
                    state[name][...] = arr
                else:
                    state[name][idx] = arr

    # ---- the training loop, step by step

    def epochs(self, params: Params, state: dict, X, Y, plan: Plan, start_epoch: int = 0,
               should_stop: Callable[[], bool] = lambda: False, X_val=None, Y_val=None) -> Iterator[EpochResult]:
        if self.strategy.name != "sync":
            yield from self._parallel_epochs(params, state, X, Y, plan, start_epoch, should_stop, X_val, Y_val)
            return
        labels = predictions(Y) if Y.shape[0] > 1 else Y[0].astype(np.int64)
        m = X.shape[1]
        n_batches = 1 if not plan.batch_size else -(-m // plan.batch_size)
        full = n_batches == 1
        if full:
            self.store.put_many({self.keys.data("X"): encode(X), self.keys.data("Y"): encode(Y)})
        step = self.version = start_epoch * n_batches
        self.scatter(step, params.flat, state)
        try:
            for epoch in range(start_epoch, plan.epochs):
                lr = plan.learning_rate_at(epoch)
                shuffle = epoch_rng(plan.seed, SHUFFLE, epoch) if plan.shuffle else None
                total, correct = 0.0, 0
                for b, (Xb, Yb, _) in enumerate(batches(X, Y, labels, plan.batch_size, shuffle)):
                    if should_stop():
                        self.store.overwrite(self.keys.stop, b"1", self.limits.key_ttl)
                        raise StopRequested("stop requested")
                    xk, yk = (self.keys.data("X"), self.keys.data("Y")) if full else self._put_batch(step, Xb, Yb)
                    cost, right = self.step(step, xk, yk, self._train(plan, epoch, b, Xb.shape[1], lr, state))
                    total += cost * Xb.shape[1]
                    correct += right
                    self._cleanup(step, list(state))
                    step += 1
                self.gather(step, params.flat, state)
                self.version = step
                self.drain()
                yield EpochResult(epoch + 1, total / m, correct / m, lr)
        finally:
            self._drain_quietly()

    def _put_batch(self, step, Xb, Yb, name=""):
        k = (self.keys.batch(step, "X" + name), self.keys.batch(step, "Y" + name))
        self.store.put_many({k[0]: encode(Xb), k[1]: encode(Yb)}, self.limits.key_ttl)
        self._written += list(k)
        return k

    def _train(self, plan: Plan, epoch: int, b: int, m: int, lr: float, state: dict) -> Train:
        return Train(lr, plan.l2, 1.0 - plan.dropout, m, (plan.seed, epoch, b, m), self.optimizer, tuple(state))

    def _base(self, step: int, train: Train) -> dict:
        """The fields that every event of a step shares."""
        return {"store": self.store.url, "run": self.keys.run, "ttl": self.limits.key_ttl, "net": self.spec,
                "train": train, "step": step, "param_units": len(self.slots)}

    def _parallel_epochs(self, params, state, X, Y, plan, start_epoch, should_stop, X_val, Y_val):
        """average, best, tree: one step per epoch; its batches train side by side, then merge."""
        k, strat = self.keys, self.strategy
        labels = predictions(Y) if Y.shape[0] > 1 else Y[0].astype(np.int64)
        if strat.name == "best":
            if X_val is None:
                raise SnnError("strategy 'best' picks by validation cost: set data.validation_split > 0")
            self.store.put_many({k.data("Xv"): encode(X_val), k.data("Yv"): encode(Y_val)})
        self.version = start_epoch
        self.scatter(start_epoch, params.flat, state)
        try:
            for epoch in range(start_epoch, plan.epochs):
                if should_stop():
                    self.store.overwrite(k.stop, b"1", self.limits.key_ttl)
                    raise StopRequested("stop requested")
                lr = plan.learning_rate_at(epoch)
                shuffle = epoch_rng(plan.seed, SHUFFLE, epoch) if plan.shuffle else None
                events, weights = [], []
                for b, (Xb, Yb, _) in enumerate(batches(X, Y, labels, plan.batch_size, shuffle)):
                    xk, yk = self._put_batch(epoch, Xb, Yb, str(b))
                    base = self._base(epoch, self._train(plan, epoch, b, Xb.shape[1], lr, state))
                    events.append(LocalEvent(**base, unit=b, X=xk, Y=yk))
                    weights.append(float(Xb.shape[1]))
                results = self.stage(events)
                self._merge(epoch, events[0].train, [("local", 0, b) for b in range(len(events))], weights)
                self._cleanup(epoch, list(state))
                self.gather(epoch + 1, params.flat, state)
                self.version = epoch + 1
                self.drain()
                m = X.shape[1]
                total = sum(r["cost"] * w for r, w in zip(results, weights))
                yield EpochResult(epoch + 1, total / m, sum(r["correct"] for r in results) / m, lr)
        finally:
            self._drain_quietly()

    def _merge(self, step: int, train: Train, refs: list, weights: list) -> None:
        """Merge the batch models: level by level through a tree, or all at once."""
        strat, base = self.strategy, {**self._base(step, train), "mode": "best" if self.strategy.name == "best" else "average"}
        if strat.name == "best":
            base.update(X_val=self.keys.data("Xv"), Y_val=self.keys.data("Yv"))
        fan_in = strat.fan_in if strat.name == "tree" else len(refs)
        level = 0
        while True:
            groups = list(range(0, len(refs), fan_in))
            final = len(groups) == 1
            self.stage([MergeEvent(**base, layer=level, unit=i, final=final, inputs=tuple(refs[g : g + fan_in]),
                                   weights=tuple(weights[g : g + fan_in]))
                        for i, g in enumerate(groups)])
            if final:
                return
            refs = [("merge", level, i) for i in range(len(groups))]
            weights = [float(sum(weights[g : g + fan_in])) for g in groups]
            level += 1

    def step(self, step: int, xk: str, yk: str, train: Train) -> tuple[float, int]:
        """One training step through the store, in the granularity's stages; returns (cost, correct predictions)."""
        return self.g.step(self, StepInputs({**self._base(step, train), "X": xk, "Y": yk}, train))

    # ---- the barrier

    def _submit(self, events: list[Event]) -> list:
        # Counted in the ledger, so the limit holds across a resume.
        self.ledger.count("sent", len(events))
        limit = self.limits.max_invocations
        if limit is not None and self.ledger.counts["sent"] > limit:
            raise InvocationLimit(f"--max-invocations {limit} reached; the run stops here")
        sent = time.time()
        return self.engine.submit([{**e.to_json(), "sent": sent} for e in events])

    def stage(self, events: list[Event]) -> list[dict]:
        """Run every event to completion; their ``done`` records, in unit order."""
        k = self.keys
        for e in events:
            names = FUNCTIONS[e.kind].output_names(e)
            self._written += [k.out(e.step, e.kind, e.layer, e.unit, n) for n in names]
            self._written.append(k.done(e.step, e.kind, e.layer, e.unit))
        lim = self.limits
        handles = self._submit(events)
        attempts = [0] * len(events)
        last_error = ["no result within the unit timeout"] * len(events)
        now = time.monotonic()
        deadline = [now + lim.unit_timeout] * len(events)
        retry_at: dict[int, float] = {}
        pending = set(range(len(events)))
        while pending:
            waiting = [i for i in pending if i not in retry_at]
            wake = min([deadline[i] for i in waiting] + list(retry_at.values()))
            done = self.engine.wait([handles[i] for i in waiting], max(0.0, wake - time.monotonic()))
            now = time.monotonic()
            again = []
            for i in sorted(pending):
                if i in retry_at:
                    if now >= retry_at[i]:
                        del retry_at[i]
                        again.append(i)
                    continue
                if handles[i] in done:
                    out = self.engine.outcome(handles[i])
                    if isinstance(out, BaseException):
                        last_error[i] = f"{type(out).__name__}: {out}"
                        self._note(events[i], attempts[i], "failed", repr(out))
                        self.ledger.count("failed")
                        retry_at[i] = now + lim.backoff * 2 ** attempts[i]
                    elif out.get("stopped"):
                        raise StopRequested("a function saw the stop flag")
                    else:
                        pending.discard(i)
                elif now >= deadline[i]:
                    last_error[i] = f"no result within the unit timeout of {lim.unit_timeout:g} s"
                    self._note(events[i], attempts[i], "lost", "no result within the unit timeout")
                    self.ledger.count("lost_and_retried")
                    again.append(i)
            for i in again:
                attempts[i] += 1
                if attempts[i] > lim.max_retries:
                    raise UnitFailure(f"unit {events[i].name} of step {events[i].step} failed "
                                      f"{attempts[i]} times, the last with {last_error[i]}")
                self.ledger.count("retries")
                (handles[i],) = self._submit([events[i].again(attempts[i])])
                deadline[i] = time.monotonic() + lim.unit_timeout
        return self._results(events)

    def _results(self, events: list[Event]) -> list[dict]:
        """The units' done records, read from the store: complete and in unit order, or an error."""
        k = self.keys
        raw = self.store.get_many([k.done(e.step, e.kind, e.layer, e.unit) for e in events])
        missing = [e.name for e, r in zip(events, raw) if r is None]
        if missing:
            raise UnitFailure(f"step {events[0].step}: no output from units {', '.join(missing)}")
        return [decode_json(r) for r in raw]

    def _note(self, event: Event, attempt, status, detail):
        now = time.time()
        self.ledger.add({"phase": event.kind, "layer": event.layer, "unit": event.unit,
                         "step": event.step, "attempt": attempt, "duplicate": False, "status": status,
                         "worker": "", "sent": event.sent or now, "start": now, "end": now,
                         "bytes_in": 0, "bytes_out": 0, "detail": detail})

    # ---- housekeeping

    def drain(self) -> None:
        """Move the functions' ledger records from the store into the ledger."""
        settle = getattr(self.engine, "settle", None)
        if settle:
            settle()
        for raw in self.store.drain(self.keys.ledger):
            self.ledger.add(decode_json(raw))

    def _drain_quietly(self) -> None:
        """Drain on the way out; when the run is already failing (say, the store died),
        a second error here must not hide the first."""
        if sys.exc_info()[1] is None:
            self.drain()
            return
        with contextlib.suppress(Exception):
            self.drain()

    def _cleanup(self, step: int, state_names: list[str]) -> None:
        """Delete every key of a finished step, by name (never a pattern, never a flush)."""
        settle = getattr(self.engine, "settle", None)
        if settle:
            settle()  # extra deliveries of this step finish first, so none reads a deleted key
        k, doomed = self.keys, self._written
        for l, u, _ in self.slots:
            doomed.append(k.param(step, l, u))
            doomed += [k.state(step, l, u, n) for n in state_names]
        self.store.delete(doomed)
        self._written = []

    def finish(self, state_names: list[str]) -> None:
        """Delete what is left of the run in the store: the data, the flags, the last parameters."""
        k = self.keys
        doomed = [k.data("X"), k.data("Y"), k.data("Xv"), k.data("Yv"), k.stop, k.ledger]
        for l, u, _ in self.slots:
            doomed.append(k.param(self.version, l, u))
            doomed += [k.state(self.version, l, u, n) for n in state_names]
        self.store.delete(doomed)

