"""Ray tasks, on a local Ray or an existing cluster (``address``)."""

from __future__ import annotations

import ray

from ..functions import handler


class RayEngine:
    name = "ray"
    shared_memory = False

    def __init__(self, address: str | None = None, workers: int | None = None, **_):
        self._owner = not ray.is_initialized()
        if self._owner:
            options = {"address": address} if address else {"num_cpus": workers}
            ray.init(include_dashboard=False, log_to_driver=False, **options)
        # Ray must not retry on its own: the coordinator decides, and counts, every retry.
        self._remote = ray.remote(max_retries=0, num_cpus=1)(handler)

    def submit(self, events):
        return [self._remote.remote(e) for e in events]

    def wait(self, handles, timeout):
        ready, _ = ray.wait(list(handles), num_returns=len(handles), timeout=timeout)
        return set(ready)

    def outcome(self, handle):
        try:
            return ray.get(handle)
        except Exception as e:  # noqa: BLE001 - a task's failure is data for the coordinator
            return e

    def close(self):
        if self._owner:
            ray.shutdown()
