"""The function handlers: ``handler(event) -> dict``, one entry point for every engine.

An event is plain JSON (``events.py`` types it: one dataclass per kind, and the
``FUNCTIONS`` registry below says what each kind runs and leaves in the store).
Arrays travel by reference: the event names store keys, the
function reads its inputs from the store and writes its outputs there, each output
set-if-absent, and a ``done`` record last. Inputs of a step are never overwritten,
so running a unit twice computes the same outputs, and the second run finds them
there already: it is counted as a duplicate and changes nothing.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.losses import output_cost, output_delta
from ..core.network import Network, NetworkSpec, Params, dropout_mask, labels_of, predictions
from ..core.strategies import local_step, pick_best, weighted_average
from .events import (
    BackwardEvent,
    Event,
    ForwardEvent,
    LocalEvent,
    LossEvent,
    MergeEvent,
    ReduceEvent,
    ShardEvent,
    StepEvent,
    TrainingEvent,
    event_from_json,
)
from .keys import Keys
from .plan import span_of, unit_part
from .cache import CACHE, WorkerCache
from .stores import open_store, push_json, size_of


class InjectedFailure(RuntimeError):
    """Raised inside a function by chaos mode."""


class _Timed:
    """A block's seconds, added to ``seconds[what]``: a class, not a generator, as it wraps every read and write."""

    __slots__ = ("seconds", "what", "start")

    def __init__(self, seconds: dict, what: str):
        self.seconds, self.what = seconds, what

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds[self.what] += time.perf_counter() - self.start


class StoreIO:
    """Reads and writes of one invocation, with the bytes counted for the ledger.

    Outputs are held until the function has returned, then written with the done
    record after them in one call (one round trip to a remote store): the done record
    still becomes visible only once every output is there, and a function that fails
    half way leaves nothing behind.
    """

    def __init__(self, store, ttl, cache: WorkerCache = CACHE):
        self.store, self.ttl = store, ttl
        self.bytes_in = self.bytes_out = 0
        self.seconds = {"load": 0.0, "store_write": 0.0, "merge": 0.0}
        self._cache = None if store.url.startswith("memory://") else cache
        self._outputs: dict[str, np.ndarray] = {}

    def timed(self, what: str) -> _Timed:
        """Add the time of the block to ``what`` (load, store_write or merge) for the trace."""
        return _Timed(self.seconds, what)

    def arrays(self, keys: list[str]) -> list[np.ndarray]:
        with self.timed("load"):
            return self._arrays(keys)

    def _arrays(self, keys: list[str]) -> list[np.ndarray]:
        cache = self._cache
        if cache is None:  # in process: the arrays themselves, nothing to keep
            values = self.store.get_many(keys)
            if any(v is None for v in values):
                raise KeyError(f"inputs missing in the store: {', '.join(k for k, v in zip(keys, values) if v is None)}")
            self.bytes_in += sum(v.nbytes if isinstance(v, np.ndarray) else len(v) for v in values)
            return [self.store.unpack(v) for v in values]
        found = [cache.get(k) for k in keys]
        wanted = [k for k, c in zip(keys, found) if c is None]
        fetched = dict(zip(wanted, self.store.get_many(wanted))) if wanted else {}
        missing = [k for k, v in fetched.items() if v is None]
        if missing:
            raise KeyError(f"inputs missing in the store: {', '.join(missing)}")
        out = []
        for k, c in zip(keys, found):
            if c is None:
                self.bytes_in += size_of(fetched[k])
                c = self.store.unpack(fetched[k])
                if cache is not None and ":data:" in k:
                    cache.keep_data(k, c)
            out.append(c)
        return out

    def array(self, key: str) -> np.ndarray:
        return self.arrays([key])[0]

    def put(self, arrays: dict[str, np.ndarray]) -> None:
        """Outputs of the function, written by ``commit``. A function never changes them once put."""
        self._outputs.update(arrays)

    def commit(self, done: str, summary: dict) -> bool:
        """Write the outputs, then the done record, set-if-absent; True if this call wrote the done record."""
        with self.timed("store_write"):
            packed = {k: self.store.pack(a, owned=True) for k, a in self._outputs.items()}
            self.bytes_out += sum(size_of(v) for v in packed.values())
            packed[done] = self.store.pack_doc(summary)  # last: its presence means every output is there
            wrote = self.store.put_many(packed, self.ttl)
        if self._cache is not None:
            for (key, array), mine in zip(self._outputs.items(), wrote):
                if mine:
                    self._cache.keep_written(key, array)
        return wrote[-1]


@dataclass(frozen=True)
class FunctionKind:
    """One kind of unit: what it runs, and what it leaves in the store besides its done record."""

    run: Callable[[Event, StoreIO, Keys], dict]
    outputs: tuple[str, ...] = ()
    state_outputs: bool = False  # also one output per optimizer state array

    def output_names(self, event: Event) -> list[str]:
        return [*self.outputs, *(event.train.state if self.state_outputs else ())]


FUNCTIONS: dict[str, FunctionKind] = {}


def function_kind(kind: str, outputs: tuple[str, ...] = (), state_outputs: bool = False):
    """Register ``run(event, io, keys) -> summary`` as the function of events of ``kind``."""
    def register(run):
        FUNCTIONS[kind] = FunctionKind(run, outputs, state_outputs)
        return run
    return register


# Kinds registered by a module outside the runtime, imported when first needed (in a
# worker process, say): the runtime does not import the layers above it.
PLUGINS = {"trial": "snn.tune"}


def function_of(kind: str) -> FunctionKind:
    if kind not in FUNCTIONS and kind in PLUGINS:
        importlib.import_module(PLUGINS[kind])
    return FUNCTIONS[kind]


def _update(ev: TrainingEvent, io, keys, layer, unit, p, g):
    """Apply the optimizer to one unit's parameters; write them and its state for step + 1."""
    s, names = ev.step, ev.train.state
    state = dict(zip(names, io.arrays([keys.state(s, layer, unit, n) for n in names])))
    # Version s stays as it was (a duplicate delivery may be reading it): s + 1 goes into new buffers.
    p_new, state_new = np.empty_like(p), {n: np.empty_like(a) for n, a in state.items()}
    ev.train.optimizer.step(p, g, state, ev.train.lr, out=(p_new, state_new))
    out = {keys.param(s + 1, layer, unit): p_new}
    out.update({keys.state(s + 1, layer, unit, n): a for n, a in state_new.items()})
    io.put(out)


def _full_params(ev: TrainingEvent, io, keys) -> np.ndarray:
    """The whole parameter vector of step ``s``, from its ``param_units`` chunks."""
    parts = io.arrays([keys.param(ev.step, 0, u) for u in range(ev.param_units)])
    if len(parts) == 1:
        return parts[0]
    with io.timed("merge"):
        return np.concatenate(parts)


@functools.lru_cache(maxsize=16)
def _weight_mask(spec: NetworkSpec) -> np.ndarray:
    """True where ``Params.flat`` holds a weight (L2 applies), False at biases."""
    return spec.layout.weight_mask([layer.weights for layer in spec.built])


# ---- network: the whole step in one invocation (the oracle)

@function_kind("step")
def run_step(ev: StepEvent, io, keys):
    t = ev.train
    net = Network(ev.net)
    params = Params(ev.net, _full_params(ev, io, keys))
    X, Y = io.arrays([ev.X, ev.Y])
    cache = net.forward(params, X, t.keep, t.mask_key)
    cost = net.cost(params, cache, Y, t.l2)
    grads = Params.zeros(ev.net, params.flat.dtype)
    net.backward(params, cache, Y, grads, t.l2)
    _update(ev, io, keys, 0, 0, params.flat, grads.flat)
    return {"cost": cost, "correct": int((predictions(cache.A[-1]) == labels_of(Y)).sum())}


# ---- layer, block:N, neuron: rows of one layer per invocation
#
# A unit owns rows r0:r1 of its layer (dense rows, or convolution filters) and runs the
# parameter-free layers of its span on its own channels (see ``plan.Span``).

def _gather(io, keys, ev, phase, layer, name, axis) -> np.ndarray:
    """Outputs ``name`` of every unit of a layer, stacked in unit order along ``axis``."""
    parts = io.arrays([keys.out(ev.step, phase, layer, u, name) for u in range(ev.units[layer])])
    if len(parts) == 1:
        return parts[0]
    with io.timed("merge"):
        return np.concatenate(parts, axis=axis)


def _through(layer, A):
    """A parameter-free layer's forward: (its input, Z, its output)."""
    Z = layer.forward({}, A)
    return A, Z, layer.activation.forward(Z)


def _chain(net, layers, A) -> tuple[np.ndarray, list]:
    """``A`` through parameter-free ``layers``; the output and each layer's (input, Z, output)."""
    steps = []
    for t in layers:
        steps.append(_through(net.built[t], A))
        A = steps[-1][2]
    return A, steps


def _input(ev, io, keys, span):
    """The input of the span's layer: the batch through the opening layers, or the previous span's outputs."""
    if span.prev is None:
        return _chain(ev.net, span.head, io.array(ev.X))[0]
    return _gather(io, keys, ev, "forward", span.prev, "A", span_of(ev.net, span.prev).out_axis)


def _rows_mask(ev, layer, dtype):
    built = ev.net.built[layer]
    mask = dropout_mask(ev.train.mask_key, layer, built.out_shape, ev.train.keep, dtype)
    return unit_part(mask, built.unit_axis, ev.rows, built.units)


def _own(ev, io, keys, p=None):
    """This unit's tensors (its rows of each of its layer's), as views of its flat slice ``p``."""
    p = io.array(keys.param(ev.step, ev.layer, ev.unit)) if p is None else p
    return p, ev.net.layout.views(p, ev.layer, ev.rows)


def _keeps_G(ev, span) -> bool:
    """Backward needs g(Z) apart from what is sent on when dropout or a tail comes between."""
    return ev.train.keep < 1.0 or bool(span.tail)


@function_kind("forward", outputs=("Z", "A", "G"))
def run_forward(ev: ForwardEvent, io, keys):
    """Z = f(p, A_prev) for this unit's rows; for hidden layers A = g(Z), dropped out, through the tail."""
    s, l, u = ev.step, ev.layer, ev.unit
    layer, span = ev.net.built[l], span_of(ev.net, l)
    A_prev = _input(ev, io, keys, span)
    _, p = _own(ev, io, keys)
    Z = layer.forward(p, A_prev)
    out = {"Z": Z}
    if span.next is not None:  # hidden layer; the output layer's activation is the loss unit's
        G = A = layer.activation.forward(Z)
        if ev.train.keep < 1.0:
            A = G * _rows_mask(ev, l, G.dtype)
        out["A"] = _chain(ev.net, span.tail, A)[0]
        if _keeps_G(ev, span):
            out["G"] = G
    io.put({keys.out(s, "forward", l, u, k): v for k, v in out.items()})
    # ||W||^2 only where the cost has an L2 term: a pass over the largest layer's weights otherwise wasted.
    return {"sumsq": sum(float(np.vdot(W, W)) for W in _weights(layer, p)) if ev.train.l2 else 0.0}


def _weights(layer, p):
    return [p[layer.weights]] if layer.weights else []


@function_kind("loss", outputs=("dZ",))
def run_loss(ev: LossEvent, io, keys):
    """A_L = g(Z_L), the cost, and dZ_L = d(cost)/dZ_L, for the whole batch."""
    s, L = ev.step, len(ev.units)
    Z = _gather(io, keys, ev, "forward", L - 1, "Z", ev.net.built[L - 1].unit_axis)
    Y = io.array(ev.Y)
    net = Network(ev.net)
    g, loss = net.activations[-1], net.loss
    A = g.forward(Z)
    io.put({keys.out(s, "loss", L, 0, "dZ"): output_delta(loss, g, Z, A, Y)})
    return {"cost": output_cost(loss, g.name, Z, A, Y), "correct": int((predictions(A) == labels_of(Y)).sum())}


def _own_dZ(ev, io, keys, span, layer):
    """d(cost)/dZ of this unit's rows: its part of the next span's shares of dA, back through its tail."""
    s, l, u, t = ev.step, ev.layer, ev.unit, ev.train
    if span.next is None:
        return io.array(keys.out(s, "loss", len(ev.units), 0, "dZ"))[ev.rows[0] : ev.rows[1]]
    shares = io.arrays([keys.out(s, "backward", span.next, v, "dA") for v in range(ev.units[span.next])])
    with io.timed("merge"):
        dA = unit_part(shares[0], span.out_axis, ev.rows, layer.units).copy()
        for share in shares[1:]:
            dA += unit_part(share, span.out_axis, ev.rows, layer.units)
    Z, G = io.arrays([keys.out(s, "forward", l, u, "Z"), keys.out(s, "forward", l, u, "G" if _keeps_G(ev, span) else "A")])
    mask = _rows_mask(ev, l, dA.dtype) if t.keep < 1.0 else None
    if span.tail:  # the tail's inputs again, from this unit's own activations
        _, steps = _chain(ev.net, span.tail, G * mask if mask is not None else G)
        for tl, (A_in, Z_t, G_t) in zip(reversed(span.tail), reversed(steps)):
            tail_layer = ev.net.built[tl]
            dA = tail_layer.input_grad({}, tail_layer.activation.backward(dA, Z_t, G_t), A_in)
    if mask is not None:
        dA *= mask
    return layer.activation.backward(dA, Z, G)


@function_kind("backward", outputs=("dA",))
def run_backward(ev: BackwardEvent, io, keys):
    """The gradient and the update of this unit's rows; its share of dA_prev."""
    s, l, u, t = ev.step, ev.layer, ev.unit, ev.train
    layer, span = ev.net.built[l], span_of(ev.net, l)
    dZ = _own_dZ(ev, io, keys, span, layer)
    A_prev = _input(ev, io, keys, span)
    flat, p = _own(ev, io, keys)
    g_flat = np.empty_like(flat)  # the unit's gradient, laid out as its parameters
    g = ev.net.layout.views(g_flat, l, ev.rows)
    layer.backward(p, A_prev, dZ, g)
    if t.l2 and layer.weights:
        g[layer.weights] += (t.l2 / t.m) * p[layer.weights]
    if span.prev is not None:
        io.put({keys.out(s, "backward", l, u, "dA"): layer.input_grad(p, dZ, A_prev)})
    _update(ev, io, keys, l, u, flat, g_flat)
    return {}


# ---- data:K: shards of the batch, then one reducer

@function_kind("shard", outputs=("grad",))
def run_shard(ev: ShardEvent, io, keys):
    """Forward and backward of this shard's examples; gradients weighted by m_k / m."""
    s, t = ev.step, ev.train
    net = Network(ev.net)
    params = Params(ev.net, _full_params(ev, io, keys))
    X, Y = io.arrays([ev.X, ev.Y])
    grads = Params.zeros(ev.net, params.flat.dtype)
    cost, A_L = net.part(params, X, Y, t.keep, t.mask_key, ev.columns, grads)
    io.put({keys.out(s, "shard", 0, ev.unit, "grad"): grads.flat})
    c0, c1 = ev.columns
    return {"cost": cost, "correct": int((predictions(A_L) == labels_of(Y[:, c0:c1])).sum())}


@function_kind("reduce")
def run_reduce(ev: ReduceEvent, io, keys):
    """Sum the shards' gradients of this reducer's chunk in shard order, add L2, update once.

    With one reducer (allreduce) the chunk is every parameter; with K (scatter-reduce)
    each reduces and updates 1/K of them, which the optimizers allow: they are elementwise.
    """
    s, t, u, (c0, c1) = ev.step, ev.train, ev.unit, ev.chunk
    grads = io.arrays([keys.out(s, "shard", 0, k, "grad") for k in range(ev.shards)])
    with io.timed("merge"):
        total = grads[0][c0:c1].copy()
        for g in grads[1:]:
            total += g[c0:c1]
    p = io.array(keys.param(s, 0, u))
    sumsq = 0.0
    if t.l2:  # the weights picked out (a copy) only when the cost has an L2 term
        weights = _weight_mask(ev.net)[c0:c1]
        W = p[weights]
        total[weights] += (t.l2 / t.m) * W
        sumsq = float(np.vdot(W, W))
    _update(ev, io, keys, 0, u, p, total)
    return {"sumsq": sumsq}


# ---- average, best, tree: every batch of an epoch from the same parameters, then a merge

def _state_of(ev, io, keys, phase, layer, unit):
    names = ev.train.state
    arrays = io.arrays([keys.out(ev.step, phase, layer, unit, n) for n in ["param", *names]])
    return arrays[0], dict(zip(names, arrays[1:]))


@function_kind("local", outputs=("param",), state_outputs=True)
def run_local(ev: LocalEvent, io, keys):
    """One optimizer step of this batch from the epoch's parameters, kept aside for the merge."""
    s, t, b = ev.step, ev.train, ev.unit
    net = Network(ev.net)
    params = Params(ev.net, _full_params(ev, io, keys))
    names = t.state
    state = dict(zip(names, io.arrays([keys.state(s, 0, 0, n) for n in names])))
    X, Y = io.arrays([ev.X, ev.Y])
    flat, st, cost, A = local_step(net, params, t.optimizer, state, X, Y, t.l2, t.keep, t.lr, t.mask_key)
    io.put({keys.out(s, "local", 0, b, "param"): flat, **{keys.out(s, "local", 0, b, n): st[n] for n in names}})
    return {"cost": cost, "correct": int((predictions(A) == labels_of(Y)).sum())}


@function_kind("merge", outputs=("param",), state_outputs=True)
def run_merge(ev: MergeEvent, io, keys):
    """Merge batch models: their weighted average, or the one best on the validation set."""
    s, names = ev.step, ev.train.state
    models = [_state_of(ev, io, keys, *ref) for ref in ev.inputs]
    extra = {}
    if ev.mode == "best":
        X_val, Y_val = io.arrays([ev.X_val, ev.Y_val])
        with io.timed("merge"):
            extra["chosen"] = pick_best(Network(ev.net), ev.net, [f for f, _ in models], X_val, Y_val)
        flat, st = models[extra["chosen"]]
    else:
        with io.timed("merge"):
            flat, st = weighted_average(models, list(ev.weights))
    if ev.final:
        io.put({keys.param(s + 1, 0, 0): flat, **{keys.state(s + 1, 0, 0, n): st[n] for n in names}})
    else:
        io.put({keys.out(s, "merge", ev.layer, ev.unit, "param"): flat,
                **{keys.out(s, "merge", ev.layer, ev.unit, n): st[n] for n in names}})
    return {"weight": float(sum(ev.weights)), **extra}


WORKER = f"{socket.gethostname()}:{os.getpid()}"


def handler(event: dict | Event) -> dict:
    """Run one unit of work. Safe to deliver twice, safe to retry.

    ``event`` is its JSON; in process (the local engine) it may be the ``Event`` itself.
    """
    started = time.time()
    if isinstance(event, Event):
        ev = event
    elif event["kind"] == "noop":
        return {}
    else:
        ev = event_from_json(event)
    chaos = ev.chaos or {}
    if chaos.get("delay"):
        time.sleep(chaos["delay"])
    if chaos.get("fail") == "before":
        raise InjectedFailure(f"chaos: failure injected before {ev.kind} ran")
    function = function_of(ev.kind)
    store, keys = open_store(ev.store), Keys(ev.run)
    io = StoreIO(store, ev.ttl)
    done = keys.done(ev.step, ev.kind, ev.layer, ev.unit)
    stop, summary = store.get_many([keys.stop, done])  # one round trip
    if stop is not None:
        return {"stopped": True}
    duplicate = summary is not None
    if duplicate:
        summary = store.unpack_doc(summary)
    if not duplicate:
        summary = function.run(ev, io, keys)
        duplicate = not io.commit(done, summary)
        if duplicate:  # another delivery finished first: what it recorded is the unit's result
            summary = store.unpack_doc(store.get_many([done])[0])
    ended = time.time()
    spent = io.seconds
    sent = ev.sent if ev.sent is not None else started
    record = {
        "phase": ev.kind, "layer": ev.layer, "unit": ev.unit, "step": ev.step,
        "attempt": ev.attempt, "speculative": ev.speculative, "duplicate": duplicate, "status": "ok",
        "worker": f"{WORKER}:{threading.current_thread().name}", "sent": sent,
        "start": started, "end": ended, "bytes_in": io.bytes_in, "bytes_out": io.bytes_out,
        "wait": max(0.0, started - sent), **spent,
        "compute": max(0.0, ended - started - sum(spent.values())),
    }
    push_json(store, keys.ledger, record)
    if chaos.get("fail") == "after":
        raise InjectedFailure(f"chaos: failure injected after {ev.kind} ran")
    return {**summary, "duplicate": duplicate}  # the done record, and whether this delivery wrote it
