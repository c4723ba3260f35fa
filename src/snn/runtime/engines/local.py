"""A thread pool in this process: the default engine, and the fastest for small units."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from threadpoolctl import ThreadpoolController

from ..functions import handler


class LocalEngine:
    name = "local"
    shared_memory = True

    def __init__(self, workers: int | None = None, inline: bool = True, **_):
        self._pool = ThreadPoolExecutor(workers or os.cpu_count() or 2, thread_name_prefix="snn-worker")
        self._inline = inline  # False when the caller must not block, e.g. trials run side by side
        self._single_blas = None  # BLAS limited to one thread while units run side by side
        self._controller = _controller()

    def submit(self, events):
        if self._inline and len(events) == 1 and events[0].get("store", "").startswith("memory://"):
            # A stage of one unit whose store is this process's memory runs in the calling
            # thread: it waits on nothing, so it cannot be stuck, and a hop through the pool
            # costs more than a small unit (1.5x per epoch at layer granularity). A unit
            # that talks to a remote store runs on the pool, where its timeout applies.
            self._blas(parallel=False)
            return [_run_here(events[0])]
        # Units side by side each get one BLAS thread: two pool threads each running a
        # multi-threaded BLAS on two cores spin against each other.
        self._blas(parallel=len(events) > 1)
        return [self._pool.submit(handler, e) for e in events]

    def _blas(self, parallel: bool) -> None:
        if parallel and self._single_blas is None:
            self._single_blas = self._controller.limit(limits=1, user_api="blas")
        elif not parallel and self._single_blas is not None:
            self._single_blas.restore_original_limits()
            self._single_blas = None

    def wait(self, handles, timeout):
        return wait(handles, timeout, return_when=FIRST_COMPLETED).done

    def outcome(self, handle):
        return handle.exception() or handle.result()

    def close(self):
        # Not waiting: a unit stuck past its timeout must not hold the run's end too.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._blas(parallel=False)


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
