"""Ray tasks, on a local Ray or an existing cluster (``address``)."""

from __future__ import annotations

import socket

import ray

from ...errors import SnnError
from ..functions import handler

CONNECT_TIMEOUT = 10.0  # seconds to reach a cluster's head before giving up with one line


def _reachable(address: str) -> None:
    """Fail fast, in one line, when nothing listens at a cluster address (Ray itself retries for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT).close()
    except ValueError:
        raise SnnError(f"Ray address {address!r} is not HOST:PORT; help: give the address `ray start --head` "
                       "printed, e.g. 10.0.0.5:6379") from None
    except OSError as e:
        raise SnnError(f"no Ray cluster answers at {address} ({e.strerror or e}); help: start one with "
                       "`ray start --head`, check the address and firewall; clusters with token authentication "
                       "also need RAY_AUTH_MODE=token and the token in this environment (docs/deploy.md)") from None


class RayEngine:
    name = "ray"
    shared_memory = False

    def __init__(self, address: str | None = None, workers: int | None = None, **_):
        self._owner = not ray.is_initialized()
        if self._owner:
            if address:
                _reachable(address)
            # Without an address, a new local instance: never whatever cluster Ray's address file names.
            options = {"address": address} if address else {"address": "local", "num_cpus": workers}
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
