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

from ..core.network import NetworkSpec, Params, labels_of
from ..core.training import SHUFFLE, EpochResult, Plan, batches, epoch_rng
from ..errors import SnnError
from .events import Event, LocalEvent, MergeEvent, Train
from .functions import FUNCTIONS
from .keys import Keys
from .engines import SETTLE_TIMEOUT, wait_all
from .hedging import Hedging, Latencies
from .ledger import Ledger
from .plan import Granularity, shard_ranges
from .stores import drain_json, get_arrays, put_arrays

STOP_POLL = 0.1  # seconds a waiting stage goes at most without asking whether the run should stop


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
    hedging: Hedging = Hedging()


def _as_slice(idx: np.ndarray):
    """A run of consecutive indices as a slice (a whole layer's are): copying through it is a memcpy."""
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _frozen(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass
class _Unit:
    """One unit of a stage while it runs: its deliveries in flight, and when to act on it next."""

    event: Event  # its latest attempt
    deadline: float  # the hard ceiling: lost if no delivery has answered by then
    live: dict  # handle -> (sent, speculative), the deliveries in flight
    last_send: float
    hedges: int = 0
    retry_at: float | None = None  # all deliveries failed: send again then
    error: str = "no result within the unit timeout"
    result: dict | None = None  # the done record, as the delivery that finished first returned it

    def hedge_at(self, delay: float, progress: float) -> float:
        # The k-th copy waits 2^k times longer: a unit that is only slow gets few copies.
        return max(self.last_send, progress) + delay * 2 ** self.hedges

    def wake(self, delay: float, progress: float) -> float:
        if self.retry_at is not None:
            return self.retry_at
        return min(self.deadline, self.hedge_at(delay, progress))


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
        self.hedging = limits.hedging
        self.latencies = Latencies(limits.hedging, limits.unit_timeout)
        self._inflight: list = []  # deliveries still running whose unit another delivery finished
        self._deferred: list[tuple[list[str], list]] = []  # a step's keys, kept until its stragglers end
        self._sampled = None  # the wake whose interval the latencies have already
        self._held = None  # (flat, state, arrays read) of the last epoch, until ``sync`` copies them in
        self._should_stop: Callable[[], bool] = lambda: False  # asked while a stage waits, too

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
                yield l, u, _as_slice(self.spec.layout.unit_indices(l, r0, r1))

    def scatter(self, step: int, flat: np.ndarray, state: dict) -> None:
        k, out = self.keys, {}
        for l, u, idx in self.slots:
            out[k.param(step, l, u)] = flat[idx]
            for name, arr in state.items():
                out[k.state(step, l, u, name)] = arr.copy() if name == "t" else arr[idx]
        put_arrays(self.store, out, self.limits.key_ttl, owned=True)  # fresh gathers of ``flat``, or copied

    def hold(self, step: int, flat: np.ndarray, state: dict) -> None:
        """Read version ``step`` of every unit's parameters and state, to be copied into ``flat`` and
        ``state`` by ``sync``, when they are wanted.

        All or nothing: everything is read before the last epoch's arrays are let go, so a
        store that fails half way leaves the last complete epoch held. The arrays read are
        never changed (every key is written once), and once held they need the store no
        more: ``sync`` works after the store has gone. In process, reading them copies nothing;
        the copy, a pass over every parameter, is made only for who looks (a checkpoint, a
        validation, the end), not at every epoch.
        """
        names = list(state)
        self._held = (flat, state, [(idx, get_arrays(self.store, [self.keys.param(step, l, u)]
                                                     + [self.keys.state(step, l, u, n) for n in names]))
                                    for l, u, idx in self.slots])

    def sync(self) -> None:
        """Copy the epoch last held into the run's parameters and state (nothing when they have it already)."""
        if self._held is None:
            return
        flat, state, read = self._held
        for idx, arrays in read:
            flat[idx] = arrays[0]
            for name, arr in zip(state, arrays[1:]):
                if name == "t":
                    state[name][...] = arr
                else:
                    state[name][idx] = arr
        self._held = None

    # ---- the training loop, step by step

    def epochs(self, params: Params, state: dict, X, Y, plan: Plan, start_epoch: int = 0,
               should_stop: Callable[[], bool] = lambda: False, X_val=None, Y_val=None) -> Iterator[EpochResult]:
        self._should_stop = should_stop
        if self.strategy.name != "sync":
            yield from self._parallel_epochs(params, state, X, Y, plan, start_epoch, should_stop, X_val, Y_val)
            return
        labels = labels_of(Y)
        m = X.shape[1]
        n_batches = 1 if not plan.batch_size else -(-m // plan.batch_size)
        full = n_batches == 1
        if full:  # the training set, once: read-only views, as nothing changes it while the run trains
            put_arrays(self.store, {self.keys.data("X"): _frozen(X), self.keys.data("Y"): _frozen(Y)}, owned=True)
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
                self.hold(step, params.flat, state)
                self.version = step
                self.drain(final=False)
                yield EpochResult(epoch + 1, total / m, correct / m, lr)
        finally:
            self._drain_quietly()

    def _put_batch(self, step, Xb, Yb, name=""):
        k = (self.keys.batch(step, "X" + name), self.keys.batch(step, "Y" + name))
        put_arrays(self.store, {k[0]: Xb, k[1]: Yb}, self.limits.key_ttl)
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
        labels = labels_of(Y)
        if strat.name == "best":
            if X_val is None:
                raise SnnError("strategy 'best' picks by validation cost: set data.validation_split > 0")
            put_arrays(self.store, {k.data("Xv"): X_val, k.data("Yv"): Y_val})
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
                self.hold(epoch + 1, params.flat, state)
                self.version = epoch + 1
                self.drain(final=False)
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
        if getattr(self.engine, "takes_events", False):
            return self.engine.submit([e.stamped(sent) for e in events])
        return self.engine.submit([{**e.to_json(), "sent": sent} for e in events])

    def stage(self, events: list[Event]) -> list[dict]:
        """Run every event to completion; their ``done`` records, in unit order.

        A unit is done when any of its deliveries comes back without an error (or left
        its done record in the store). One that has not answered by its hedge time gets a
        speculative copy (``hedging.py``); one whose deliveries all failed is sent again,
        at once the first time, then after a doubling backoff; one with no answer past
        ``unit_timeout`` is counted lost and sent again.
        """
        k = self.keys
        for e in events:
            names = FUNCTIONS[e.kind].output_names(e)
            self._written += [k.out(e.step, e.kind, e.layer, e.unit, n) for n in names]
            self._written.append(k.done(e.step, e.kind, e.layer, e.unit))
        kind = (events[0].kind, events[0].layer)
        now = progress = started = time.monotonic()
        units = [_Unit(e, now + self.limits.unit_timeout, {h: (now, False)}, now)
                 for e, h in zip(events, self._submit(events))]
        self._owner = {h: u for u in units for h in u.live}  # delivery -> its unit
        pending = set(range(len(units)))
        asked = now
        while pending:
            if now - asked > STOP_POLL:  # a Ctrl-C or a stop ends a stage that waits on lost or slow units too
                asked = now
                if self._should_stop():
                    self.store.overwrite(self.keys.stop, b"1", self.limits.key_ttl)
                    raise StopRequested("stop requested")
            # A unit is suspect once neither it nor its stage has made progress for a while: on an engine
            # with fewer workers than units, the last ones wait in a queue while the others run. The
            # first result of a stage takes a unit's whole latency; after it, results come at intervals.
            gap = (*kind, progress == started)
            delay = self.latencies.hedge_after(gap) if self.hedging.active else float("inf")
            waiting = [units[i] for i in pending]
            wake = min(u.wake(delay, progress) for u in waiting)
            flying = [h for u in waiting for h in u.live]
            timeout = min(STOP_POLL, max(0.0, wake - time.monotonic()))
            done = self.engine.wait(flying, timeout) if flying else time.sleep(timeout) or set()
            now = time.monotonic()
            heard = {id(self._owner[h]) for h in done}
            moved = False
            for i in sorted(pending):
                u = units[i]
                if id(u) in heard:
                    finished, failed = self._settled(u, gap, done, now, progress)
                    moved = True
                    if finished:
                        pending.discard(i)
                        self._inflight += list(u.live)
                        continue
                    if failed and not u.live:  # every delivery failed
                        u.retry_at = now + (self.limits.backoff * 2 ** (u.event.attempt - 1) if u.event.attempt else 0.0)
                if now >= u.wake(delay, progress):
                    self._act(u, now, delay, progress)
            if moved:
                progress = now
        return self._results(units)

    def _act(self, u: _Unit, now: float, delay: float, progress: float) -> None:
        """A unit's timer ran out: send it again after its failures, past its timeout, or as a hedge."""
        if u.retry_at is not None:
            self._resend(u, now)
        elif now >= u.deadline:
            u.error = f"no result within the unit timeout of {self.limits.unit_timeout:g} s"
            self._note(u.event, u.event.attempt, "lost", "no result within the unit timeout")
            self.ledger.count("lost_and_retried")
            self._resend(u, now)
        elif now >= u.hedge_at(delay, progress):
            u.hedges += 1
            self.ledger.count("speculative")
            (h,) = self._submit([u.event.again(u.event.attempt, speculative=True)])
            self._own(u, h, True)
            u.last_send = now

    def _own(self, u: _Unit, handle, speculative: bool) -> None:
        u.live[handle] = (time.monotonic(), speculative)
        self._owner[handle] = u

    def _settled(self, u: _Unit, kind, done: set, now: float, progress: float) -> tuple[bool, bool]:
        """Take the unit's finished deliveries out of ``u.live``: (one succeeded, one failed)."""
        succeeded = failed = False
        for h in [h for h in u.live if h in done]:
            sent, speculative = u.live.pop(h)
            out = self.engine.outcome(h)
            if isinstance(out, BaseException):
                u.error = f"{type(out).__name__}: {out}"
                self._note(u.event, u.event.attempt, "failed", repr(out))
                self.ledger.count("failed")
                failed = True
                continue
            if out.get("stopped"):
                raise StopRequested("a function saw the stop flag")
            if not succeeded and self._sampled is not now:  # one interval per wake, however many it brought
                self.latencies.add(kind, now - max(sent, progress))
                self._sampled = now
            if not succeeded:
                succeeded, u.result = True, {k: v for k, v in out.items() if k != "duplicate"}
            if speculative and not out.get("duplicate"):  # this copy wrote the done record
                self.ledger.count("speculative_won")
                # When the unit timeout would have sent it again, on the workers' clock: what a lost
                # original would have cost. A straggler's own end, once on the ledger, says more.
                e = u.event
                self.ledger.hedge_won((e.step, e.kind, e.layer, e.unit), time.time() + (u.deadline - now))
        if succeeded or not failed or u.live:
            return succeeded, failed
        # A delivery that failed after doing its work left the done record: nothing to retry.
        e = u.event
        return self.store.get_many([self.keys.done(e.step, e.kind, e.layer, e.unit)])[0] is not None, True

    def _resend(self, u: _Unit, now: float) -> None:
        """Send the unit again as a new attempt (after a failure, or past the unit timeout)."""
        attempt = u.event.attempt + 1
        if attempt > self.limits.max_retries:
            raise UnitFailure(f"unit {u.event.name} of step {u.event.step} failed {attempt} times, the last with {u.error}")
        self.ledger.count("retries")
        u.event, u.retry_at = u.event.again(attempt), None
        (h,) = self._submit([u.event])
        self._own(u, h, False)
        u.last_send, u.deadline = now, time.monotonic() + self.limits.unit_timeout

    def _results(self, units: list[_Unit]) -> list[dict]:
        """The units' done records in unit order: as a delivery returned them, or read from the store
        for a unit whose deliveries failed after the work was done."""
        k, unread = self.keys, [u.event for u in units if u.result is None]
        raw = dict(zip(map(id, unread), self.store.get_many([k.done(e.step, e.kind, e.layer, e.unit) for e in unread])))
        missing = [e.name for e in unread if raw[id(e)] is None]
        if missing:
            raise UnitFailure(f"step {unread[0].step}: no output from units {', '.join(missing)}")
        return [u.result if u.result is not None else self.store.unpack_doc(raw[id(u.event)]) for u in units]

    def _note(self, event: Event, attempt, status, detail):
        now = time.time()
        self.ledger.add({"phase": event.kind, "layer": event.layer, "unit": event.unit,
                         "step": event.step, "attempt": attempt, "duplicate": False, "status": status,
                         "worker": "", "sent": event.sent or now, "start": now, "end": now,
                         "bytes_in": 0, "bytes_out": 0, "detail": detail})

    # ---- housekeeping

    def settle(self) -> None:
        """Wait (bounded) for every delivery still running, so that what it did is on the ledger and none
        reads a key after its step is deleted: the copies that lost their race, and the extra deliveries
        of chaos mode (the chaos engine tracks those itself). Then delete the keys kept for them.

        Only at the run's end: a straggler bills until it ends (on Lambda too), so what it did belongs on the
        ledger; the steps in between do not wait for it (``_cleanup``).
        """
        settle = getattr(self.engine, "settle", None)
        if settle:
            settle()
        elif self._inflight:
            wait_all(self.engine, self._inflight, SETTLE_TIMEOUT)
        self._inflight = []
        for doomed, _ in self._deferred:
            self.store.delete(doomed)
        self._deferred = []

    def _stragglers(self) -> list:
        """The deliveries still running whose unit is done (a copy that lost, a slow original, chaos's extras)."""
        # Once each: a copy that lost its race is the coordinator's and the chaos engine's too (Ray refuses repeats).
        running = list(dict.fromkeys([*self._inflight, *getattr(self.engine, "running", list)()]))
        if not running:
            return []
        done = self.engine.wait(running, 0)
        self._inflight = [h for h in self._inflight if h not in done]
        return [h for h in running if h not in done]

    def drain(self, final: bool = True) -> None:
        """Move the functions' ledger records from the store into the ledger. ``final``: after every delivery
        still running has ended (bounded); else what is there now, and a straggler's record comes later."""
        if final:
            self.settle()
        for record in drain_json(self.store, self.keys.ledger):
            self.ledger.add(record)
        self.ledger.settle_hedges(final)

    def _drain_quietly(self) -> None:
        """Drain on the way out; when the run is already failing (say, the store died),
        a second error here must not hide the first."""
        if sys.exc_info()[1] is None:
            self.drain()
            return
        with contextlib.suppress(Exception):
            self.drain()

    def _cleanup(self, step: int, state_names: list[str]) -> None:
        """Delete every key of a finished step, by name (never a pattern, never a flush).

        A delivery of the step still running (a straggler whose unit a copy or a retry finished) must not
        read a deleted key or write one again: the step's keys then wait until it ends, and the run goes on.
        """
        k, doomed = self.keys, self._written
        for l, u, _ in self.slots:
            doomed.append(k.param(step, l, u))
            doomed += [k.state(step, l, u, n) for n in state_names]
        self._written = []
        stragglers = self._stragglers()
        running = set(stragglers)
        self._deferred.append((doomed, stragglers))
        keep = []
        for keys, waiting in self._deferred:
            if any(h in running for h in waiting):
                keep.append((keys, waiting))
            else:
                self.store.delete(keys)
        self._deferred = keep

    def finish(self, state_names: list[str]) -> None:
        """Delete what is left of the run in the store: the data, the flags, the last parameters."""
        k = self.keys
        doomed = [k.data("X"), k.data("Y"), k.data("Xv"), k.data("Yv"), k.stop, k.ledger]
        for l, u, _ in self.slots:
            doomed.append(k.param(self.version, l, u))
            doomed += [k.state(self.version, l, u, n) for n in state_names]
        self.store.delete(doomed)

