"""Lithops: the same handler on AWS Lambda, Google Cloud, Azure, IBM Cloud, Kubernetes...

Lithops reads its own configuration (``~/.lithops/config`` or ``LITHOPS_CONFIG_FILE``).
With none, this engine uses Lithops' ``localhost`` backend with this Python.
"""

from __future__ import annotations

import os
import sys
import time

import lithops
from lithops.wait import ALWAYS

from ..functions import handler

POLL = 0.005


def _entry(event):
    return handler(event)


class LithopsEngine:
    name = "lithops"
    shared_memory = False

    def __init__(self, config: dict | None = None, **_):
        if config is None and not (os.environ.get("LITHOPS_CONFIG_FILE") or os.path.exists(os.path.expanduser("~/.lithops/config"))):
            config = {"lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"},
                      "localhost": {"runtime": sys.executable}}
        self._executor = lithops.FunctionExecutor(config=config) if config else lithops.FunctionExecutor()

    def submit(self, events):
        return list(self._executor.map(_entry, [{"event": e} for e in events]))

    def wait(self, handles, timeout):
        # Lithops' own timeout uses SIGALRM (main thread only): poll instead.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done, pending = self._executor.wait(list(handles), throw_except=False, return_when=ALWAYS,
                                                show_progressbar=False)
            if done or not pending or (deadline is not None and time.monotonic() >= deadline):
                return set(done)
            time.sleep(POLL)

    def outcome(self, handle):
        try:
            return handle.result()
        except Exception as e:  # noqa: BLE001 - a call's failure is data for the coordinator
            return e

    def close(self):
        self._executor.clean(clean_cloudobjects=False) if hasattr(self._executor, "clean") else None
