"""What a worker process keeps between invocations, so that it need not download it again.

Keys are never overwritten (every output is set-if-absent, and a step's keys carry the
step), so a value kept under a key stays right for as long as anyone reads that key:
keeping it needs no invalidation. Two kinds are kept, only for stores in another process
(an in-process store hands its arrays over already):

* the run's data (``:data:`` keys), written once per run: the last few;
* the outputs this process wrote itself and whose write won (another delivery's value
  may differ in its last bits, computed with another BLAS thread count), up to a byte
  budget: the parameters and optimizer state of step ``s + 1`` that the same worker's
  next invocation of the unit reads back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

DATA_ENTRIES = 2
WRITTEN_BYTES = 256 << 20  # a Lambda function of 1-2 GB keeps this beside its working set


class WorkerCache:
    def __init__(self, data_entries: int = DATA_ENTRIES, written_bytes: int = WRITTEN_BYTES):
        self.data_entries, self.written_bytes = data_entries, written_bytes
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._written: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # worker threads of one process share it

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            found = self._data.get(key)
            return found if found is not None else self._written.get(key)

    def keep_data(self, key: str, array: np.ndarray) -> None:
        with self._lock:
            self._data[key] = array
            while len(self._data) > self.data_entries:
                self._data.popitem(last=False)

    def keep_written(self, key: str, array: np.ndarray) -> None:
        if array.nbytes > self.written_bytes:
            return
        array = array.view()
        array.flags.writeable = False  # an input from now on: nobody changes it
        with self._lock:
            self._written[key] = array
            self._bytes += array.nbytes
            while self._bytes > self.written_bytes:
                _, old = self._written.popitem(last=False)
                self._bytes -= old.nbytes


CACHE = WorkerCache()
