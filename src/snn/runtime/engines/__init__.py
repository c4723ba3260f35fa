"""Engines: where function invocations run. One small interface, loaded lazily by name.

    submit(events) -> handles      invoke the handler once per event
    wait(handles, timeout) -> set  the handles finished: returns as soon as one is, or at timeout
    outcome(handle)                the handler's dict, or the exception it raised
    close()

``local`` needs nothing; ``ray`` and ``lithops`` are optional extras.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Protocol

from ...errors import SnnError


class EngineUnavailable(SnnError):
    """The engine's optional extra is not installed."""


class Engine(Protocol):
    name: str
    shared_memory: bool  # True when functions run in this process (a memory store works)

    def submit(self, events: list[dict]) -> list[Any]: ...

    def wait(self, handles: list[Any], timeout: float | None) -> set: ...

    def outcome(self, handle: Any) -> dict | BaseException: ...

    def close(self) -> None: ...


ENGINES = {"local": ("local", "LocalEngine", None), "ray": ("ray", "RayEngine", "ray"),
           "lithops": ("lithops", "LithopsEngine", "lithops")}


def make_engine(name: str, **options) -> Engine:
    if name not in ENGINES:
        raise SnnError(f"unknown engine {name!r}; allowed: {', '.join(ENGINES)}")
    module, cls, extra = ENGINES[name]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**options)
    except ImportError as e:
        raise EngineUnavailable(
            f"engine {name!r} needs {e.name!r}, which is not installed; help: pip install 'serverless-nn[{extra}]'"
        ) from None

# How long a settle waits for deliveries still running: a bound, so that one stuck
# delivery cannot hold the run for ever (what it did then stays off the ledger).
SETTLE_TIMEOUT = 60.0


def wait_all(engine: Engine, handles: list, timeout: float) -> set:
    """Wait until every handle is finished, or ``timeout`` seconds have passed; the finished ones."""
    deadline, done = time.monotonic() + timeout, set()
    while len(done) < len(handles):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done |= engine.wait([h for h in handles if h not in done], left)
    return done
