"""The function handlers: ``handler(event) -> dict``, one entry point for every engine.

An event is plain JSON. Arrays travel by reference: the event names store keys, the
function reads its inputs from the store and writes its outputs there, each output
set-if-absent, and a ``done`` record last. Inputs of a step are never overwritten,
so running a unit twice computes the same outputs, and the second run finds them
there already: it is counted as a duplicate and changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time

import numpy as np

from ..core.activations import get_activation
from ..core.losses import get_loss, output_cost, output_delta
from ..core.network import Network, NetworkSpec, Params, dropout_mask, param_count, predictions
from ..core.optimizers import make_optimizer
from ..core.strategies import local_step, pick_best, weighted_average
from .codec import decode, encode, encode_json
from .keys import Keys
from .plan import split_rows
from .stores import get_json, open_store, put_json


class InjectedFailure(RuntimeError):
    """Raised inside a function by chaos mode."""


class StoreIO:
    """Reads and writes of one invocation, with the bytes counted for the ledger."""

    # Dataset arrays are written once per run, so a worker process may keep them
    # instead of downloading them for every invocation. An in-process store needs no
    # cache: decoding its bytes is free.
    _cache: dict[str, np.ndarray] = {}
    _cache_limit = 2
    _cache_lock = threading.Lock()  # worker threads of one process share it

    def __init__(self, store, ttl):
        self.store, self.ttl = store, ttl
        self.bytes_in = self.bytes_out = 0
        self.seconds = {"load": 0.0, "store_write": 0.0, "merge": 0.0}
        self._caching = not store.url.startswith("memory://")

    @contextlib.contextmanager
    def timed(self, what: str):
        """Add the time of the block to ``what`` (load, store_write or merge) for the trace."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] += time.perf_counter() - t

    def arrays(self, keys: list[str]) -> list[np.ndarray]:
        with self.timed("load"):
            return self._arrays(keys)

    def _arrays(self, keys: list[str]) -> list[np.ndarray]:
        cached = [self._cache.get(k) for k in keys]
        wanted = [k for k, c in zip(keys, cached) if c is None]
        fetched = dict(zip(wanted, self.store.get_many(wanted))) if wanted else {}
        missing = [k for k, v in fetched.items() if v is None]
        if missing:
            raise KeyError(f"inputs missing in the store: {', '.join(missing)}")
        out = []
        for k, c in zip(keys, cached):
            if c is None:
                self.bytes_in += len(fetched[k])
                c = decode(fetched[k])
                if self._caching and ":data:" in k:
                    with self._cache_lock:
                        if len(self._cache) >= self._cache_limit:
                            self._cache.pop(next(iter(self._cache)))
                        self._cache[k] = c
            out.append(c)
        return out

    def array(self, key: str) -> np.ndarray:
        return self.arrays([key])[0]

    def put(self, arrays: dict[str, np.ndarray]) -> None:
        with self.timed("store_write"):
            encoded = {k: encode(a) for k, a in arrays.items()}
            self.bytes_out += sum(len(v) for v in encoded.values())
            self.store.put_many(encoded, self.ttl)


def _spec(ev) -> NetworkSpec:
    net = ev["net"]
    sizes = net["sizes"]
    return NetworkSpec(sizes[0], tuple(zip(sizes[1:], net["activations"])), net["loss"])


def _optimizer(ev):
    opt = dict(ev["train"]["optimizer"])
    return make_optimizer(opt.pop("name"), **opt)


def _mask_key(ev):
    return tuple(ev["train"]["mask_key"])


def _labels(Y):
    return Y[0].astype(np.int64) if Y.shape[0] == 1 else Y.argmax(axis=0)


def _update(ev, io, keys, layer, unit, p, g):
    """Apply the optimizer to one unit's parameters; write them and its state for step + 1."""
    s, names = ev["step"], ev["train"]["state"]
    state = {n: a.copy() for n, a in zip(names, io.arrays([keys.state(s, layer, unit, n) for n in names]))}
    p = p.copy()
    _optimizer(ev).step(p, g, state, ev["train"]["lr"])
    out = {keys.param(s + 1, layer, unit): p}
    out.update({keys.state(s + 1, layer, unit, n): a for n, a in state.items()})
    io.put(out)


def _full_params(ev, io, keys) -> np.ndarray:
    """The whole parameter vector of step ``s``, from its ``param_units`` chunks."""
    parts = io.arrays([keys.param(ev["step"], 0, u) for u in range(ev.get("param_units", 1))])
    if len(parts) == 1:
        return parts[0]
    with io.timed("merge"):
        return np.concatenate(parts)


@functools.lru_cache(maxsize=16)
def _weight_mask(sizes: tuple) -> np.ndarray:
    """True where ``Params.flat`` holds a weight (L2 applies), False at biases."""
    mask = np.zeros(param_count(sizes), dtype=bool)
    for W in Params(list(sizes), mask).W:
        W.fill(True)
    return mask


# ---- network: the whole step in one invocation (the oracle)

def run_step(ev, io, keys):
    t = ev["train"]
    net = Network(_spec(ev))
    params = Params(net.spec.sizes, _full_params(ev, io, keys))
    X, Y = io.arrays([ev["X"], ev["Y"]])
    cache = net.forward(params, X, t["keep"], _mask_key(ev))
    cost = net.cost(params, cache, Y, t["l2"])
    grads = Params.zeros(params.sizes, params.flat.dtype)
    net.backward(params, cache, Y, grads, t["l2"])
    _update(ev, io, keys, 0, 0, params.flat, grads.flat)
    return {"cost": cost, "correct": int((predictions(cache.A[-1]) == _labels(Y)).sum())}


# ---- layer, block:N, neuron: rows of one layer per invocation

def _gather(io, keys, step, phase, layer, units, name) -> np.ndarray:
    """Outputs ``name`` of every unit of a layer, stacked in unit order."""
    parts = io.arrays([keys.out(step, phase, layer, u, name) for u in range(units)])
    if len(parts) == 1:
        return parts[0]
    with io.timed("merge"):
        return np.concatenate(parts, axis=0)


def _input(ev, io, keys, layer):
    """A[layer - 1]: the batch for the first layer, else the previous layer's outputs."""
    if layer == 0:
        return io.array(ev["X"])
    return _gather(io, keys, ev["step"], "forward", layer - 1, ev["units"][layer - 1], "A")


def _rows_mask(ev, layer, r0, r1, dtype):
    n, m = ev["net"]["sizes"][layer + 1], ev["train"]["mask_key"][3]
    return dropout_mask(_mask_key(ev), layer, (n, m), ev["train"]["keep"], dtype)[r0:r1]


def run_forward(ev, io, keys):
    """Z = W A_prev + b for this unit's rows; A = g(Z) (after dropout) for hidden layers."""
    s, l, u, (r0, r1) = ev["step"], ev["layer"], ev["unit"], ev["rows"]
    sizes = ev["net"]["sizes"]
    A_prev = _input(ev, io, keys, l)
    W, b = split_rows(io.array(keys.param(s, l, u)), r1 - r0, sizes[l])
    Z = W @ A_prev
    Z += b
    out = {"Z": Z}
    if l < len(sizes) - 2:  # hidden layer; the output layer's activation is the loss unit's
        G = get_activation(ev["net"]["activations"][l]).forward(Z)
        out["A"] = G
        if ev["train"]["keep"] < 1.0:
            out["G"], out["A"] = G, G * _rows_mask(ev, l, r0, r1, G.dtype)
    io.put({keys.out(s, "forward", l, u, k): v for k, v in out.items()})
    return {"sumsq": float(np.vdot(W, W))}


def run_loss(ev, io, keys):
    """A_L = g(Z_L), the cost, and dZ_L = d(cost)/dZ_L, for the whole batch."""
    s, L = ev["step"], len(ev["net"]["activations"])
    Z = _gather(io, keys, s, "forward", L - 1, ev["units"][L - 1], "Z")
    Y = io.array(ev["Y"])
    g, loss = get_activation(ev["net"]["activations"][-1]), get_loss(ev["net"]["loss"])
    A = g.forward(Z)
    io.put({keys.out(s, "loss", L, 0, "dZ"): output_delta(loss, g, Z, A, Y)})
    return {"cost": output_cost(loss, g.name, Z, A, Y), "correct": int((predictions(A) == _labels(Y)).sum())}


def run_backward(ev, io, keys):
    """dW, db and the update for this unit's rows; its share of dA_prev = W^T dZ."""
    s, l, u, (r0, r1) = ev["step"], ev["layer"], ev["unit"], ev["rows"]
    sizes, units, t = ev["net"]["sizes"], ev["units"], ev["train"]
    L = len(sizes) - 1
    if l == L - 1:
        dZ = io.array(keys.out(s, "loss", L, 0, "dZ"))[r0:r1]
    else:
        shares = io.arrays([keys.out(s, "backward", l + 1, v, "dA") for v in range(units[l + 1])])
        with io.timed("merge"):
            dA = shares[0][r0:r1].copy()
            for share in shares[1:]:
                dA += share[r0:r1]
        own = "G" if t["keep"] < 1.0 else "A"
        Z, G = io.arrays([keys.out(s, "forward", l, u, "Z"), keys.out(s, "forward", l, u, own)])
        if t["keep"] < 1.0:
            dA *= _rows_mask(ev, l, r0, r1, dA.dtype)
        dZ = get_activation(ev["net"]["activations"][l]).backward(dA, Z, G)
    A_prev = _input(ev, io, keys, l)
    p = io.array(keys.param(s, l, u))
    W, _ = split_rows(p, r1 - r0, sizes[l])
    g = np.empty_like(p)  # the unit's gradient, laid out as its parameters: W rows, then b
    dW, db = split_rows(g, r1 - r0, sizes[l])
    np.matmul(dZ, A_prev.T, out=dW)
    if t["l2"]:
        dW += (t["l2"] / t["m"]) * W
    np.sum(dZ, axis=1, keepdims=True, out=db)
    if l > 0:
        io.put({keys.out(s, "backward", l, u, "dA"): W.T @ dZ})
    _update(ev, io, keys, l, u, p, g)
    return {}


# ---- data:K: shards of the batch, then one reducer

def run_shard(ev, io, keys):
    """Forward and backward of this shard's examples; gradients weighted by m_k / m."""
    s, t, (c0, c1) = ev["step"], ev["train"], ev["columns"]
    net = Network(_spec(ev))
    params = Params(net.spec.sizes, _full_params(ev, io, keys))
    X, Y = io.arrays([ev["X"], ev["Y"]])
    X, Y = X[:, c0:c1], Y[:, c0:c1]
    cache = net.forward(params, X, t["keep"], _mask_key(ev), slice(c0, c1))
    weight = (c1 - c0) / t["m"]
    grads = Params.zeros(params.sizes, params.flat.dtype)
    net.backward(params, cache, Y, grads)
    grads.flat *= weight
    io.put({keys.out(s, "shard", 0, ev["unit"], "grad"): grads.flat})
    return {"cost": net.cost(params, cache, Y) * weight, "correct": int((predictions(cache.A[-1]) == _labels(Y)).sum())}


def run_reduce(ev, io, keys):
    """Sum the shards' gradients of this reducer's chunk in shard order, add L2, update once.

    With one reducer (allreduce) the chunk is every parameter; with K (scatter-reduce)
    each reduces and updates 1/K of them, which the optimizers allow: they are elementwise.
    """
    s, t, u, (c0, c1) = ev["step"], ev["train"], ev["unit"], ev["chunk"]
    grads = io.arrays([keys.out(s, "shard", 0, k, "grad") for k in range(ev["shards"])])
    with io.timed("merge"):
        total = grads[0][c0:c1].copy()
        for g in grads[1:]:
            total += g[c0:c1]
    p = io.array(keys.param(s, 0, u))
    weights = _weight_mask(tuple(ev["net"]["sizes"]))[c0:c1]
    W = p[weights]
    if t["l2"]:
        total[weights] += (t["l2"] / t["m"]) * W
    _update(ev, io, keys, 0, u, p, total)
    return {"sumsq": float(np.vdot(W, W))}


# ---- average, best, tree: every batch of an epoch from the same parameters, then a merge

def _state_of(ev, io, keys, phase, layer, unit):
    names = ev["train"]["state"]
    arrays = io.arrays([keys.out(ev["step"], phase, layer, unit, n) for n in ["param", *names]])
    return arrays[0], dict(zip(names, arrays[1:]))


def run_local(ev, io, keys):
    """One optimizer step of this batch from the epoch's parameters, kept aside for the merge."""
    s, t, b = ev["step"], ev["train"], ev["unit"]
    net = Network(_spec(ev))
    params = Params(net.spec.sizes, _full_params(ev, io, keys))
    names = t["state"]
    state = dict(zip(names, io.arrays([keys.state(s, 0, 0, n) for n in names])))
    X, Y = io.arrays([ev["X"], ev["Y"]])
    flat, st, cost, A = local_step(net, params, _optimizer(ev), state, X, Y, t["l2"], t["keep"], t["lr"],
                                   _mask_key(ev))
    io.put({keys.out(s, "local", 0, b, "param"): flat, **{keys.out(s, "local", 0, b, n): st[n] for n in names}})
    return {"cost": cost, "correct": int((predictions(A) == _labels(Y)).sum())}


def run_merge(ev, io, keys):
    """Merge batch models: their weighted average, or the one best on the validation set."""
    s, names = ev["step"], ev["train"]["state"]
    models = [_state_of(ev, io, keys, *ref) for ref in ev["inputs"]]
    extra = {}
    if ev["mode"] == "best":
        X_val, Y_val = io.arrays([ev["X_val"], ev["Y_val"]])
        with io.timed("merge"):
            extra["chosen"] = pick_best(Network(_spec(ev)), ev["net"]["sizes"], [f for f, _ in models], X_val, Y_val)
        flat, st = models[extra["chosen"]]
    else:
        with io.timed("merge"):
            flat, st = weighted_average(models, ev["weights"])
    if ev["final"]:
        io.put({keys.param(s + 1, 0, 0): flat, **{keys.state(s + 1, 0, 0, n): st[n] for n in names}})
    else:
        io.put({keys.out(s, "merge", ev["layer"], ev["unit"], "param"): flat,
                **{keys.out(s, "merge", ev["layer"], ev["unit"], n): st[n] for n in names}})
    return {"weight": float(sum(ev["weights"])), **extra}


class TrialPruned(Exception):
    """The tuner asked this trial to stop."""


def run_trial(ev, io, keys):
    """One hyperparameter trial: a whole training, reporting its validation cost every epoch."""
    from .. import run as run_module
    from ..config import parse_config

    cfg = parse_config(ev["config"], f"trial {ev['step']}")
    reports, prune = (keys.out(ev["step"], "trial", 0, 0, n) for n in ("reports", "prune"))
    best = {"best_val_cost": float("inf"), "best_val_accuracy": None, "best_epoch": 0, "epochs": 0}

    def on_epoch(record):
        best["epochs"] = record["epoch"]
        if record["val_cost"] < best["best_val_cost"]:
            best.update(best_val_cost=record["val_cost"], best_val_accuracy=record["val_accuracy"],
                        best_epoch=record["epoch"])
        io.store.push(reports, encode_json({"epoch": record["epoch"], "val_cost": record["val_cost"]}))
        if io.store.get_many([prune])[0] is not None:
            raise TrialPruned

    started = time.time()
    try:
        run_module.train(cfg, ev.get("data_root"), save=False, on_epoch=on_epoch)
        pruned = False
    except TrialPruned:
        pruned = True
    return {**best, "pruned": pruned, "seconds": time.time() - started}


KINDS = {"trial": run_trial, "step": run_step, "forward": run_forward, "loss": run_loss, "backward": run_backward,
         "shard": run_shard, "reduce": run_reduce, "local": run_local, "merge": run_merge}

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def handler(event: dict) -> dict:
    """Run one unit of work. Safe to deliver twice, safe to retry."""
    if event["kind"] == "noop":
        return {}
    started = time.time()
    chaos = event.get("chaos") or {}
    if chaos.get("delay"):
        time.sleep(chaos["delay"])
    if chaos.get("fail") == "before":
        raise InjectedFailure(f"chaos: failure injected before {event['kind']} ran")
    store, keys = open_store(event["store"]), Keys(event["run"])
    io = StoreIO(store, event.get("ttl"))
    if store.get_many([keys.stop])[0] is not None:
        return {"stopped": True}
    done = keys.done(event["step"], event["kind"], event["layer"], event["unit"])
    summary = get_json(store, done)
    duplicate = summary is not None
    if not duplicate:
        summary = KINDS[event["kind"]](event, io, keys)
        ended = time.time()  # before the done record is visible: whoever sees it starts after this
        duplicate = not put_json(store, done, summary, event.get("ttl"))
    else:
        ended = time.time()
    spent = io.seconds
    record = {
        "phase": event["kind"], "layer": event["layer"], "unit": event["unit"], "step": event["step"],
        "attempt": event.get("attempt", 0), "duplicate": duplicate, "status": "ok",
        "worker": f"{WORKER}:{threading.current_thread().name}", "sent": event.get("sent", started),
        "start": started, "end": ended, "bytes_in": io.bytes_in, "bytes_out": io.bytes_out,
        "wait": max(0.0, started - event.get("sent", started)), **spent,
        "compute": max(0.0, ended - started - sum(spent.values())),
    }
    store.push(keys.ledger, encode_json(record))
    if chaos.get("fail") == "after":
        raise InjectedFailure(f"chaos: failure injected after {event['kind']} ran")
    return {**summary, "duplicate": duplicate}
