"""Ray tasks, on a local Ray or an existing cluster (``address``).

Joining a cluster is checked first, within bounds: Ray itself retries for many minutes
when nothing, or something else than Ray, answers at an address. Without an address
the engine starts a local instance of its own, never one named in Ray's address file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import ray

from ...errors import SnnError
from ..functions import handler

CONNECT_TIMEOUT = 10.0  # seconds to open a connection to a cluster's head
PROBE_TIMEOUT = 30.0  # seconds for the head to answer as Ray does (the probe is killed then)
WORKERS_TIMEOUT = 120.0  # seconds for every warm worker to start on a loaded cluster

# Ask the head for its cluster id, as ray.init would, with Ray's own waits cut short.
# Exit 3: this Ray has no such client, so nothing could be checked.
PROBE = """
import sys
try:
    from ray._raylet import GcsClient
except ImportError:
    sys.exit(3)
try:
    GcsClient(address=sys.argv[1])
except Exception as e:
    print(type(e).__name__, " ".join(str(e).split())[:500])
    sys.exit(1)
"""
PROBE_ENV = {"RAY_py_gcs_connect_timeout_s": "5", "RAY_gcs_rpc_server_connect_timeout_s": "5"}

HELP_ADDRESS = ("help: give the address `ray start --head` printed (HOST:6379 by default), `auto` on a node "
                "of the cluster, or ray://HOST:10001 for Ray Client")
TOKEN = ("clusters with token authentication need RAY_AUTH_MODE=token and the cluster's token "
         "(RAY_AUTH_TOKEN or ~/.ray/auth_token) in this environment (docs/deploy.md)")


def check_address(address: str) -> None:
    """Fail in one line, within bounds, unless a Ray cluster's head answers at ``address``."""
    if address == "auto":
        return  # Ray finds it on this node, or says at once that there is none
    host, port = _split(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise SnnError(f"no Ray cluster answers at {address} ({e.strerror or e}); help: start one with "
                       f"`ray start --head`, check the address and the firewall ({TOKEN})") from None
    if not address.startswith("ray://"):
        _probe_head(address)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 < number < 65536:
        raise SnnError(f"Ray address {address!r} is not HOST:PORT; {HELP_ADDRESS}")
    return host.strip("[]"), number


def _probe_head(address: str) -> None:
    """Something listens at ``address``: is it a Ray head that lets us in? Asked in a child
    process, so that Ray's waits can be cut short, and the child killed at the bound."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, address], check=False, capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT, env={**os.environ, **PROBE_ENV}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SnnError(f"{address} accepts connections but does not answer as a Ray cluster's head within "
                       f"{PROBE_TIMEOUT:g} s; {HELP_ADDRESS}") from None
    if done.returncode in (0, 3):
        return
    said = done.stdout.strip() or f"exit status {done.returncode}"
    if said.startswith("AuthenticationError"):
        raise SnnError(f"the Ray cluster at {address} refused this machine: its token authentication is on, and "
                       f"{_token_problem()}; help: {TOKEN}")
    raise SnnError(f"{address} does not answer as a Ray cluster's head ({said}); {HELP_ADDRESS}")


def _token_problem() -> str:
    """Why this machine's token was refused, as far as its environment tells."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return "RAY_AUTH_MODE is not 'token' here, so no token was sent"
    return "the token sent (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) is not the cluster's"


def _init_failed(address: str | None, e: Exception) -> str:
    said = " ".join(str(e).split())[:500].rstrip(".")
    if address:
        fix = "" if "pip install" in said else f"; {HELP_ADDRESS}"  # Ray's own message may say what to install
        return f"could not join the Ray cluster at {address}: {said}{fix}"
    return f"could not start a local Ray: {said}; help: check the logs under Ray's temporary folder (/tmp/ray)"


class RayEngine:
    """Invocations on warm workers: one actor per CPU of the cluster, each running the stateless
    handler one event at a time, like a pool of warm Lambda containers.

    A call to an actor goes straight to its process (0.9 ms a round trip on a 2-core machine)
    where a task is first scheduled by the raylet (1.8 ms); and a unit that lands on the worker
    that ran it last step finds its own outputs in the worker's cache. Each event goes to the
    worker with the fewest calls in flight, so a speculative copy never queues behind the
    straggler it rescues. A worker that dies fails its calls (the coordinator retries them
    elsewhere) and is restarted by Ray.
    """

    name = "ray"
    shared_memory = False

    def __init__(self, address: str | None = None, workers: int | None = None, **_):
        self._owner = not ray.is_initialized()
        if self._owner:
            if address:
                check_address(address)
            # Without an address, a new local instance: never whatever cluster Ray's address file names.
            options = {"address": address} if address else {"address": "local", "num_cpus": workers}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, **options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SnnError(_init_failed(address, e)) from None
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))  # all: a finished run's are on their way back
        # Ray must not retry on its own: the coordinator decides, and counts, every retry.
        worker = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(Worker)
        self._workers = [worker.remote() for _ in range(n)]
        self._flying = [0] * n  # calls in flight per worker
        self._on: dict = {}  # call -> index of its worker, until it is seen finished
        # Warm before the first step: a worker's process start and imports (a second or more) are
        # the engine's start, not the first epoch's.
        ready, _ = ray.wait([w.ready.remote() for w in self._workers], num_returns=n, timeout=WORKERS_TIMEOUT)
        if len(ready) < n:
            self.close()
            raise SnnError(f"only {len(ready)} of {n} Ray workers started within {WORKERS_TIMEOUT:g} s; help: check "
                           "that the cluster has free CPUs (`ray status`), or pass --workers N")

    def submit(self, events):
        calls = []
        for event in events:
            i = min(range(len(self._workers)), key=self._flying.__getitem__)
            call = self._workers[i].run.remote(event)
            self._flying[i] += 1
            self._on[call] = i
            calls.append(call)
        return calls

    def wait(self, handles, timeout):
        handles = list(handles)
        first, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if not first:
            return set()
        ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)  # and all the others done by now
        done = set(first) | set(ready)
        for call in done:
            i = self._on.pop(call, None)
            if i is not None:
                self._flying[i] -= 1
        return done

    def outcome(self, handle):
        try:
            return ray.get(handle)
        except Exception as e:  # noqa: BLE001 - a call's failure is data for the coordinator
            return e

    def close(self):
        for w in self._workers:  # their CPUs back to the cluster now, not when this process ends
            ray.kill(w)
        self._workers = []
        if self._owner:
            ray.shutdown()


class Worker:
    """A warm worker: the handler, in a process that stays up between calls."""

    def ready(self) -> bool:
        return True

    def run(self, event: dict) -> dict:
        return handler(event)
