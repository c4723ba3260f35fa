"""A thread pool in this process: the default engine, and the fastest for small units."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait

from threadpoolctl import ThreadpoolController

from ..functions import handler


class LocalEngine:
    name = "local"
    shared_memory = True
    takes_events = True  # the handler runs in this process: it can take the Event itself, no JSON either way

    def __init__(self, workers: int | None = None, inline: bool = True, **_):
        self._pool = UrgentFirstPool(workers or os.cpu_count() or 2, "snn-worker")
        self._inline = inline  # False when the caller must not block, e.g. trials run side by side
        self._single_blas = None  # BLAS limited to one thread while units run side by side
        self._controller = _controller()

    def submit(self, events):
        if self._inline and len(events) == 1 and _runs_through(events[0]):
            # A stage of one unit whose store is this process's memory, with no chaos injected,
            # runs in the calling thread: it waits on nothing, so it cannot be stuck, and a hop
            # through the pool costs more than a small unit (1.5x per epoch at layer granularity).
            # A unit that talks to a remote store, or that chaos delays or fails, runs on the
            # pool, where its timeout and its hedges apply.
            self._blas(parallel=False)
            return [_run_here(events[0])]
        # Units side by side each get one BLAS thread: two pool threads each running a
        # multi-threaded BLAS on two cores spin against each other.
        self._blas(parallel=len(events) > 1)
        return [self._pool.submit(handler, e, urgent=bool(_field(e, "speculative") or _field(e, "attempt")))
                for e in events]

    def _blas(self, parallel: bool) -> None:
        if parallel and self._single_blas is None:
            self._single_blas = self._controller.limit(limits=1, user_api="blas")
        elif not parallel and self._single_blas is not None:
            self._single_blas.restore_original_limits()
            self._single_blas = None

    def wait(self, handles, timeout):
        # Units run in the calling thread are finished already: no waiter, no locks.
        return {h for h in handles if h.done()} or wait(handles, timeout, return_when=FIRST_COMPLETED).done

    def outcome(self, handle):
        return handle.exception() or handle.result()

    def close(self):
        # Not waiting: a unit stuck past its timeout must not hold the run's end too.
        self._pool.shutdown()
        self._blas(parallel=False)


class UrgentFirstPool:
    """A thread pool whose queue serves urgent work first: hedges and retries, then the rest in order.

    A copy of a lost unit is what its whole stage waits for; in a first-come queue it
    would wait behind every delivery sent before it (a stage's other units, chaos
    mode's duplicates), so a lost unit would cost a stage's length instead of a unit's.
    Threads are daemons, started as work comes: a unit stuck for ever cannot hold the
    interpreter's exit, as the coordinator's timeouts already do not wait for it.
    """

    def __init__(self, workers: int, prefix: str):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._workers, self._prefix, self._threads = workers, prefix, []
        self._lock = threading.Lock()

    def submit(self, fn, arg, urgent: bool = False) -> Future:
        future: Future = Future()
        self._queue.put((0 if urgent else 1, next(self._order), future, fn, arg))
        with self._lock:
            if len(self._threads) < min(self._workers, self._queue.qsize() + len(self._threads)):
                thread = threading.Thread(target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            _, _, future, fn, arg = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(arg))
            except BaseException as e:  # noqa: BLE001 - delivered to the coordinator like a worker's failure
                future.set_exception(e)

    def shutdown(self) -> None:
        """Cancel what has not started, and let every thread end after its current unit."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()[2].cancel()
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None, None))


def _runs_through(event) -> bool:
    """Nothing can hold this unit up: its store is this process's memory, and chaos injects nothing into it."""
    return _field(event, "store", "").startswith("memory://") and not _field(event, "chaos")


def _field(event, name, default=None):
    """A field of an event, given as an ``Event`` or as its JSON (chaos mode's, the benchmarks' noop)."""
    return event.get(name, default) if isinstance(event, dict) else getattr(event, name, default)


_found = []


def _controller() -> ThreadpoolController:
    """Looking for the loaded BLAS libraries is slow: do it once per process."""
    if not _found:
        _found.append(ThreadpoolController())
    return _found[0]


@contextlib.contextmanager
def single_blas():
    """BLAS on one thread inside the block: for threads that each run their own products side by side."""
    limiter = _controller().limit(limits=1, user_api="blas")
    try:
        yield
    finally:
        limiter.restore_original_limits()


def _run_here(event) -> Future:
    future: Future = Future()
    try:
        future.set_result(handler(event))
    except Exception as e:  # noqa: BLE001 - delivered to the coordinator like a worker's failure
        future.set_exception(e)
    return future
