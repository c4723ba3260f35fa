"""State stores: where invocations leave their outputs. One small interface, two kinds.

Every write of an output is set-if-absent (``put`` returns False when the key was
already there): that is what makes a duplicate delivery harmless and detectable.
"""

from __future__ import annotations

import threading
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ...errors import StoreError
from ..codec import decode, decode_json, encode, encode_json


class Store(Protocol):
    url: str

    def pack(self, array: np.ndarray, owned: bool = False):
        """An array as this store keeps it: ``.npy`` bytes, or (in process) a read-only array: ``array``
        itself when ``owned`` (the caller made it and hands it over), else a copy."""

    def unpack(self, value) -> np.ndarray:
        """What ``pack`` made, back as an array (read-only, never a copy where avoidable)."""

    def pack_doc(self, obj: dict):
        """A JSON document (a done record, a ledger record) as this store keeps it: bytes, or in
        process the dict itself, which the writer hands over and nobody changes."""

    def unpack_doc(self, value) -> dict: ...

    def put(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Set ``key`` only if absent; True if this call wrote it."""

    def put_many(self, items: dict[str, bytes], ttl: float | None = None) -> list[bool]: ...

    def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    def overwrite(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    def delete(self, keys: list[str]) -> None: ...

    def incr(self, key: str, by: int = 1) -> int: ...

    def push(self, key: str, value: bytes) -> None: ...

    def drain(self, key: str) -> list[bytes]: ...

    def close(self) -> None: ...


def get(store: Store, key: str) -> bytes | None:
    return store.get_many([key])[0]


def get_array(store: Store, key: str) -> np.ndarray:
    (value,) = get_arrays(store, [key])
    return value


def get_arrays(store: Store, keys: list[str]) -> list[np.ndarray]:
    values = store.get_many(keys)
    missing = [k for k, v in zip(keys, values) if v is None]
    if missing:
        raise KeyError(f"missing in the store: {', '.join(missing)}")
    return [store.unpack(v) for v in values]


def put_arrays(store: Store, arrays: dict[str, np.ndarray], ttl: float | None = None, owned: bool = False) -> int:
    """Write arrays set-if-absent; returns the bytes sent. ``owned``: the caller hands the arrays over."""
    packed = {k: store.pack(a, owned) for k, a in arrays.items()}
    store.put_many(packed, ttl)
    return sum(size_of(v) for v in packed.values())


def size_of(value) -> int:
    """Bytes of a stored value: its length, or an in-process array's size."""
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


class Encoded:
    """The ``pack``/``unpack`` of stores in another process: arrays travel as ``.npy`` bytes."""

    @staticmethod
    def pack(array: np.ndarray, owned: bool = False) -> bytes:
        return encode(array)

    @staticmethod
    def unpack(value: bytes) -> np.ndarray:
        return decode(value)

    @staticmethod
    def pack_doc(obj) -> bytes:
        return encode_json(obj)

    @staticmethod
    def unpack_doc(value: bytes):
        return decode_json(value)


def get_json(store: Store, key: str):
    value = get(store, key)
    return None if value is None else store.unpack_doc(value)


def put_json(store: Store, key: str, obj, ttl: float | None = None) -> bool:
    return store.put(key, store.pack_doc(obj), ttl)


def push_json(store: Store, key: str, obj) -> None:
    store.push(key, store.pack_doc(obj))


def drain_json(store: Store, key: str) -> list:
    return [store.unpack_doc(v) for v in store.drain(key)]


_opened: dict[str, Store] = {}
_lock = threading.Lock()


# The URL schemes of a Redis-protocol store (Redis, Valkey, ElastiCache); the config checks against these too.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "valkey://")


def open_store(url: str) -> Store:
    """The store at ``url`` (``memory://NAME`` or ``redis://...``), one client per process."""
    with _lock:
        if url not in _opened:
            if url.startswith("memory://"):
                from .memory import MemoryStore

                _opened[url] = MemoryStore.named(url)
            elif url.startswith(REDIS_SCHEMES):
                from .redis import RedisStore

                _opened[url] = RedisStore(url)
            else:
                raise StoreError(f"unknown store URL {shown(url)!r}; allowed: memory, redis://HOST:PORT[/DB], "
                                 f"{', '.join(REDIS_SCHEMES[1:])}")
        return _opened[url]


def shown(url: str, limit: int = 200) -> str:
    """``url`` as messages may show it: a password in it replaced by ``***``, and at most ``limit`` characters."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user = f"{parts.username}:" if parts.username else ":"
            url = urlunsplit(parts._replace(netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}"))
    except ValueError:  # not even a URL: say nothing of what it holds
        url = url.partition("://")[0] + "://..."
    return url if len(url) <= limit else url[:limit] + "..."


def forget_store(url: str) -> None:
    with _lock:
        store = _opened.pop(url, None)
    if store is not None:
        store.close()
