"""A run's runtime: its engine and store, and where its epochs come from.

``run.train`` asks ``epoch_source`` for the epochs of a run: the core loop in this
process when nothing distributed is asked for, else a ``Coordinator`` over an engine
and a store that ``runtime_session`` opens and closes in the right order.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.strategies import train_epochs_parallel
from ..core.training import EpochResult, Plan, train_epochs
from ..errors import ConfigError
from .columns import batch_gradients
from .coordinator import Coordinator, Limits, Strategy
from .engines import make_engine
from .engines.chaos import ChaosEngine
from .hedging import Hedging
from .info import RuntimeInfo, write_runtime_info
from .stores import forget_store, open_store
from .stores.embedded import EmbeddedValkey

if TYPE_CHECKING:  # the config is read above the runtime; only its shape is needed here
    from ..config import RuntimeConfig, TrainingConfig


@contextlib.contextmanager
def runtime_session(rt, **engine_options):
    """An engine and a store for ``rt`` (a RuntimeConfig), closed in the right order afterwards.

    Without a store URL: a memory store when the engine runs functions in this process,
    else an embedded Valkey on loopback.
    """
    if rt.address and rt.store in (None, "memory"):
        raise ConfigError("runtime.address names a Ray cluster, whose nodes cannot reach an embedded Valkey on this "
                          "machine's loopback; help: pass --store redis://HOST:PORT that every node can reach")
    with contextlib.ExitStack() as stack:
        url = rt.store
        if url is not None and url != "memory":
            # A server of the user's is checked first: it fails in a moment, with one line, where
            # joining a cluster takes seconds and fills the terminal with its own logs.
            store = open_store(url)
            stack.callback(forget_store, url)
        engine = make_engine(rt.engine, address=rt.address, workers=rt.workers, **engine_options)
        stack.callback(engine.close)
        if url is None or url == "memory":
            if not engine.shared_memory:
                if url == "memory":
                    raise ConfigError(f"runtime.store 'memory' lives in one process; engine {rt.engine!r} runs "
                                      "functions elsewhere; help: pass --store redis://HOST:PORT or leave it out")
                url = stack.enter_context(EmbeddedValkey()).url
            else:
                url = f"memory://{uuid.uuid4().hex}"
            store = open_store(url)
            stack.callback(forget_store, url)
        yield engine, store


@dataclass
class Epochs:
    """The epochs of a run, and ``sync``, which brings the run's parameters and state to the last
    epoch's before anyone reads them: the core loop trains them in place, the runtime copies them
    in from the store only when asked."""

    results: Iterator[EpochResult]
    sync: Callable[[], None] = lambda: None

    def __iter__(self) -> Iterator[EpochResult]:
        return iter(self.results)


@contextlib.contextmanager
def epoch_source(rt: RuntimeConfig, t: TrainingConfig, spec, net, optimizer, params, state, X, Y, plan: Plan,
                 start_epoch, should_stop, ledger, folder, X_val=None, Y_val=None):
    """The epochs of this run: in process for ``network`` on ``local``, else through the runtime."""
    granularity, chaos = rt.granularity, rt.chaos
    if granularity.kind == "network" and rt.engine == "local" and not chaos.active and rt.store is None:
        if t.strategy == "sync":
            with batch_gradients(net, plan.batch_size or X.shape[1]) as gradients:
                yield Epochs(train_epochs(net, params, optimizer, state, X, Y, plan, start_epoch, gradients))
        else:
            yield Epochs(train_epochs_parallel(net, params, optimizer, state, X, Y, plan, t.strategy, t.fan_in,
                                               X_val, Y_val, start_epoch))
        return
    with runtime_session(rt) as (engine, store):
        if chaos.active:
            engine = ChaosEngine(engine, chaos)
        run_id = uuid.uuid4().hex
        if folder is not None:
            write_runtime_info(folder, RuntimeInfo(run_id=run_id, store=store.url, engine=rt.engine))
        limits = Limits(rt.unit_timeout, rt.max_retries, rt.retry_backoff, rt.key_ttl, rt.max_invocations,
                        Hedging(rt.hedge_factor, rt.hedge_floor))
        reducers = granularity.size if granularity.kind == "data" and t.reduce == "scatter-reduce" else 1
        coordinator = Coordinator(spec, granularity, engine, store, run_id,
                                  optimizer, ledger, limits,
                                  Strategy(t.strategy, reducers, t.fan_in))
        yield Epochs(coordinator.epochs(params, state, X, Y, plan, start_epoch, should_stop, X_val, Y_val),
                     coordinator.sync)
        if chaos.active:
            engine.settle()
            coordinator.drain()
            ledger.counts.update({f"injected_{k}": v for k, v in engine.injected.items()})
        coordinator.finish(list(state))
