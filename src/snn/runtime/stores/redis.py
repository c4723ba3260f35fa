"""Redis, Valkey or ElastiCache through redis-py. Set-if-absent is ``SET key value NX``."""

from __future__ import annotations

import redis


class RedisStore:
    def __init__(self, url: str):
        self.url = url
        self._client = redis.Redis.from_url(url.replace("valkey://", "redis://", 1))

    def put(self, key, value, ttl=None):
        return bool(self._client.set(key, value, nx=True, px=_ms(ttl)))

    def put_many(self, items, ttl=None):
        pipe = self._client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, nx=True, px=_ms(ttl))
        return [bool(r) for r in pipe.execute()]

    def get_many(self, keys):
        return self._client.mget(keys) if keys else []

    def overwrite(self, key, value, ttl=None):
        self._client.set(key, value, px=_ms(ttl))

    def delete(self, keys):
        # Only the keys named: never a pattern, never FLUSHDB.
        for start in range(0, len(keys), 1000):
            self._client.unlink(*keys[start : start + 1000])

    def incr(self, key, by=1):
        return int(self._client.incrby(key, by))

    def push(self, key, value):
        self._client.rpush(key, value)

    def drain(self, key):
        pipe = self._client.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        return pipe.execute()[0]

    def close(self):
        self._client.close()


def _ms(ttl):
    return None if ttl is None else max(1, int(ttl * 1000))
