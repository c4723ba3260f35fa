"""Redis, Valkey or ElastiCache through redis-py. Set-if-absent is ``SET key value NX``.

Every call has a bounded wait, and a server that cannot be reached, or goes away
mid-run, is a ``StoreError`` naming the URL: the run then ends with one line and a
checkpoint, never a hang or a redis traceback.
"""

from __future__ import annotations

import functools

import redis

from ...errors import StoreError
from . import Encoded, shown

CONNECT_TIMEOUT, CALL_TIMEOUT = 5.0, 60.0  # seconds: a step's largest arrays move well inside a minute


def _store_errors(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise StoreError(f"the store {shown(self.url)} cannot be reached ({' '.join(str(e).split())}); "
                             "help: check that the server runs and that this machine can reach it") from None
        except redis.RedisError as e:
            raise StoreError(f"the store {shown(self.url)} refused a command: {' '.join(str(e).split())}") from None

    return call


class RedisStore(Encoded):
    def __init__(self, url: str):
        self.url = url
        try:
            self._client = redis.Redis.from_url(url.replace("valkey://", "redis://", 1),
                                                socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CALL_TIMEOUT)
        except ValueError as e:
            raise StoreError(f"store URL {shown(url)!r} is not valid: {e}; help: redis://HOST:PORT[/DB]") from None
        self._ping()

    @_store_errors
    def _ping(self):
        self._client.ping()

    @_store_errors
    def put(self, key, value, ttl=None):
        return bool(self._client.set(key, value, nx=True, px=_ms(ttl)))

    @_store_errors
    def put_many(self, items, ttl=None):
        pipe = self._client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, nx=True, px=_ms(ttl))
        return [bool(r) for r in pipe.execute()]

    @_store_errors
    def get_many(self, keys):
        return self._client.mget(keys) if keys else []

    @_store_errors
    def overwrite(self, key, value, ttl=None):
        self._client.set(key, value, px=_ms(ttl))

    @_store_errors
    def delete(self, keys):
        # Only the keys named: never a pattern, never FLUSHDB.
        for start in range(0, len(keys), 1000):
            self._client.unlink(*keys[start : start + 1000])

    @_store_errors
    def incr(self, key, by=1):
        return int(self._client.incrby(key, by))

    @_store_errors
    def push(self, key, value):
        self._client.rpush(key, value)

    @_store_errors
    def drain(self, key):
        pipe = self._client.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        return pipe.execute()[0]

    def close(self):
        self._client.close()


def _ms(ttl):
    return None if ttl is None else max(1, int(ttl * 1000))
