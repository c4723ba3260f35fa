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
    return [decode(v) for v in values]


def put_arrays(store: Store, arrays: dict[str, np.ndarray], ttl: float | None = None) -> int:
    """Write arrays set-if-absent; returns the bytes sent."""
    encoded = {k: encode(a) for k, a in arrays.items()}
    store.put_many(encoded, ttl)
    return sum(len(v) for v in encoded.values())


def get_json(store: Store, key: str):
    value = get(store, key)
    return None if value is None else decode_json(value)


def put_json(store: Store, key: str, obj, ttl: float | None = None) -> bool:
    return store.put(key, encode_json(obj), ttl)


_opened: dict[str, Store] = {}
_lock = threading.Lock()


def open_store(url: str) -> Store:
    """The store at ``url`` (``memory://NAME`` or ``redis://...``), one client per process."""
    with _lock:
        if url not in _opened:
            if url.startswith("memory://"):
                from .memory import MemoryStore

                _opened[url] = MemoryStore.named(url)
            elif url.startswith(("redis://", "rediss://", "unix://", "valkey://")):
                from .redis import RedisStore

                _opened[url] = RedisStore(url)
            else:
                raise StoreError(f"unknown store URL {shown(url)!r}; allowed: memory, redis://HOST:PORT[/DB], "
                                 "rediss://, unix://, valkey://")
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
