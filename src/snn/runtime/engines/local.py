"""A thread pool in this process: the default engine, and the fastest for small units."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, wait

from ..functions import handler


class LocalEngine:
    name = "local"
    shared_memory = True

    def __init__(self, workers: int | None = None, **_):
        self._pool = ThreadPoolExecutor(workers or os.cpu_count() or 2, thread_name_prefix="snn-worker")

    def submit(self, events):
        if len(events) == 1:
            # A stage of one unit runs in the calling thread: the coordinator would only
            # wait for it, and a hop through the pool costs more than a small unit.
            return [_run_here(events[0])]
        return [self._pool.submit(handler, e) for e in events]

    def wait(self, handles, timeout):
        return wait(handles, timeout).done

    def outcome(self, handle):
        return handle.exception() or handle.result()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run_here(event) -> Future:
    future: Future = Future()
    try:
        future.set_result(handler(event))
    except Exception as e:  # noqa: BLE001 - delivered to the coordinator like a worker's failure
        future.set_exception(e)
    return future
