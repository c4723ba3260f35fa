"""An in-process store: a dict behind a lock. For the local engine and for tests.

Arrays are kept as they are, read-only, instead of as ``.npy`` bytes: nothing leaves
the process, so encoding would only copy them once more on the way in (a unit's
parameters, every step). A function hands over the arrays it made and no longer
changes (``owned``); any other array, or a view, is copied once, as encoding would.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from ..codec import decode, decode_json


class MemoryStore:
    _named: dict[str, MemoryStore] = {}

    def __init__(self, url: str | None = None):
        self.url = url or f"memory://{uuid.uuid4().hex}"
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lists: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self.clock = time.monotonic  # for expiry; a test may put its own clock here

    @classmethod
    def named(cls, url: str) -> MemoryStore:
        """Stores live in this process only: a memory URL cannot reach another process."""
        if url not in cls._named:
            cls._named[url] = cls(url)
        return cls._named[url]

    def _live(self, key: str, now: float) -> bool:
        item = self._data.get(key)
        if item is None:
            return False
        if item[1] is not None and item[1] < now:
            del self._data[key]
            return False
        return True

    @staticmethod
    def pack(array: np.ndarray, owned: bool = False) -> np.ndarray:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError("object arrays cannot be stored: only numeric arrays travel through the store")
        # Kept as it is when handed over: an array its maker gave away, or a read-only view of one
        # that its owner does not change while the store holds it (a run's training set).
        # Either memory order: the training set's examples are its rows, so X itself is Fortran-ordered.
        contiguous = array.flags.c_contiguous or array.flags.f_contiguous
        handed = owned and contiguous and (array.flags.owndata or not array.flags.writeable)
        if not handed:
            array = np.array(array, order="C")  # not handed over, or a view of a base its owner may change
        array.flags.writeable = False
        return array

    @staticmethod
    def unpack(value) -> np.ndarray:
        return value if isinstance(value, np.ndarray) else decode(value)

    @staticmethod
    def pack_doc(obj):
        return obj

    @staticmethod
    def unpack_doc(value):
        return decode_json(value) if isinstance(value, bytes) else value

    def put(self, key, value, ttl=None):
        return self.put_many({key: value}, ttl)[0]

    def put_many(self, items, ttl=None):
        now = self.clock()
        expires = None if ttl is None else now + ttl
        wrote = []
        with self._lock:
            for key, value in items.items():
                fresh = not self._live(key, now)
                if fresh:
                    self._data[key] = (value, expires)
                wrote.append(fresh)
        return wrote

    def get_many(self, keys):
        now, data, out = self.clock(), self._data, []
        with self._lock:  # _live inlined: every input of every unit comes through here
            for k in keys:
                item = data.get(k)
                if item is not None and item[1] is not None and item[1] < now:
                    del data[k]
                    item = None
                out.append(None if item is None else item[0])
        return out

    def overwrite(self, key, value, ttl=None):
        with self._lock:
            self._data[key] = (value, None if ttl is None else self.clock() + ttl)

    def delete(self, keys):
        with self._lock:
            for k in keys:
                self._data.pop(k, None)
                self._lists.pop(k, None)

    def incr(self, key, by=1):
        with self._lock:
            value = int(self._data.get(key, (b"0", None))[0]) + by
            self._data[key] = (str(value).encode(), None)
            return value

    def push(self, key, value):
        with self._lock:
            self._lists.setdefault(key, []).append(value)

    def drain(self, key):
        with self._lock:
            return self._lists.pop(key, [])

    def __len__(self):
        return len(self._data) + len(self._lists)

    def close(self):
        MemoryStore._named.pop(self.url, None)
