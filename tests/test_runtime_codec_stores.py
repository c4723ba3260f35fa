import inspect
import io
import pickle
import re
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import redis

from snn.errors import StoreError
from snn.runtime.codec import decode, encode
from snn.runtime.stores import Store, get_array, get_json, open_store, put_arrays, put_json
from snn.runtime.stores.embedded import EmbeddedValkey
from snn.runtime.stores.memory import MemoryStore
from snn.runtime.stores.redis import RedisStore

DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.uint8])


@settings(max_examples=60, deadline=None)
@given(a=arrays(DTYPES, array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)), fortran=st.booleans())
def test_arrays_round_trip_as_npy(a, fortran):
    a = np.asfortranarray(a) if fortran else a
    data = encode(a)
    b = decode(data)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.load(io.BytesIO(data), allow_pickle=False), a)  # really .npy
    assert not b.flags.writeable  # a view of the stored bytes


def test_no_pickles_either_way():
    with pytest.raises(TypeError, match="object arrays cannot be stored"):
        encode(np.array([{"a": 1}], dtype=object))
    evil = io.BytesIO()
    np.save(evil, np.array([None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="refusing an object array"):
        decode(evil.getvalue())
    with pytest.raises(ValueError, match="not a version 1.0 .npy"):
        decode(pickle.dumps([1, 2]))


@pytest.fixture(params=["memory", "valkey", "redis_server"])
def store(request):
    """Every store: in process, the embedded Valkey, and Debian's redis-server."""
    if request.param == "memory":
        s = MemoryStore()
        yield s
        s.close()
    else:
        s = RedisStore(request.getfixturevalue(request.param))
        yield s
        s.close()


def test_set_if_absent_is_what_makes_duplicates_harmless(store):
    key = f"t:{time.monotonic_ns()}"
    assert store.put(key, b"first") is True
    assert store.put(key, b"second") is False
    assert store.get_many([key, key + ":none"]) == [b"first", None]
    store.overwrite(key, b"third")
    assert store.get_many([key]) == [b"third"]
    assert store.put_many({key: b"x", key + ":2": b"y"}) == [False, True]
    store.delete([key, key + ":2"])
    assert store.get_many([key, key + ":2"]) == [None, None]


def test_counters_lists_and_ttl(store):
    key = f"c:{time.monotonic_ns()}"
    assert store.incr(key) == 1 and store.incr(key, 5) == 6
    store.push(key + ":l", b"a")
    store.push(key + ":l", b"b")
    assert store.drain(key + ":l") == [b"a", b"b"] and store.drain(key + ":l") == []
    store.put(key + ":t", b"v", ttl=30)
    assert store.get_many([key + ":t"]) == [b"v"]
    if isinstance(store, MemoryStore):  # expiry on a clock the test moves: no sleeping, no race
        now = store.clock()
        store.clock = lambda: now + 30.001
        assert store.get_many([key + ":t"]) == [None]
    else:  # the server holds the TTL we gave (it expires keys itself, as it has been tested to)
        assert 0 < redis.Redis.from_url(store.url).pttl(key + ":t") <= 30_000
    store.delete([key])


def test_array_and_json_helpers(store):
    key = f"a:{time.monotonic_ns()}"
    sent = put_arrays(store, {key: np.arange(6.0).reshape(2, 3)})
    # An in-process store keeps the array itself (48 bytes of data); the others its .npy bytes.
    assert sent == 48 if isinstance(store, MemoryStore) else sent > 48
    np.testing.assert_array_equal(get_array(store, key), np.arange(6.0).reshape(2, 3))
    with pytest.raises(KeyError, match="missing in the store"):
        get_array(store, key + ":absent")
    assert put_json(store, key + ":j", {"cost": 0.5}) and get_json(store, key + ":j") == {"cost": 0.5}
    store.delete([key, key + ":j"])


def test_the_memory_store_keeps_arrays_read_only_and_copies_what_it_is_not_handed():
    store = MemoryStore()
    mine = np.arange(4.0)
    put_arrays(store, {"lent": mine})
    mine[0] = 99.0  # the writer's array stays the writer's: what was stored does not change
    assert get_array(store, "lent")[0] == 0.0 and mine.flags.writeable
    fresh = np.arange(3.0)
    put_arrays(store, {"given": fresh}, owned=True)
    kept = get_array(store, "given")
    assert kept is fresh and not kept.flags.writeable  # handed over: no copy, and nobody can change it
    with pytest.raises(ValueError, match="read-only"):
        kept[0] = 1.0
    view = np.arange(6.0)[::2]
    put_arrays(store, {"view": view}, owned=True)
    assert get_array(store, "view") is not view  # a view shares a base its owner may change: copied
    assert put_json(store, "doc", {"a": 1}) and get_json(store, "doc") == {"a": 1}


def test_store_urls(valkey):
    assert open_store(valkey).url == valkey
    assert open_store("memory://abc") is open_store("memory://abc")
    with pytest.raises(StoreError, match="unknown store URL 'ftp://x'; allowed: memory, redis://"):
        open_store("ftp://x")
    with pytest.raises(StoreError, match="redis://127.0.0.1:1 cannot be reached.*help:"):
        open_store("redis://127.0.0.1:1")


@settings(max_examples=100, deadline=None)
@given(url=st.text(max_size=300).filter(lambda u: not u.startswith(("memory://", "redis://", "rediss://", "unix://",
                                                                      "valkey://"))))
def test_any_other_store_url_is_one_line_naming_the_schemes(url):
    with pytest.raises(StoreError) as e:
        open_store(url)
    assert "allowed: memory, redis://HOST:PORT[/DB]" in str(e.value) and "\n" not in str(e.value)


def test_a_password_in_a_store_url_is_never_shown():
    for url in ("redis://:hunter2@127.0.0.1:1/0", "redis://bob:hunter2@127.0.0.1:99999", "ftp://bob:hunter2@x"):
        with pytest.raises(StoreError) as e:
            open_store(url)
        assert "hunter2" not in str(e.value) and "***" in str(e.value)


# Every method of the Store interface, with arguments.
CALLS = {"put": ("k", b"v"), "put_many": ({"k": b"v"},), "get_many": (["k"],), "overwrite": ("k", b"v"),
         "delete": (["k"],), "incr": ("k",), "push": ("k", b"v"), "drain": ("k",)}


def test_a_store_that_goes_away_is_a_store_error_from_every_method():
    """As when the server dies mid-run: one line naming the store, at once, never a redis traceback."""
    interface = {name for name, _ in inspect.getmembers(Store, inspect.isfunction) if not name.startswith("_")}
    codecs = {"pack", "unpack", "pack_doc", "unpack_doc"}  # how values are kept: they never reach the server
    assert set(CALLS) == interface - {"close"} - codecs
    with EmbeddedValkey() as server:
        store = RedisStore(server.url)
        assert store.put("k", b"v")
    try:
        for name, args in CALLS.items():
            started = time.monotonic()
            reached = rf"^the store {re.escape(server.url)} cannot be reached \(.*\); help: "
            with pytest.raises(StoreError, match=reached):
                getattr(store, name)(*args)
            assert time.monotonic() - started < 30  # refused at once; the bound is the client's connect timeout
    finally:
        store.close()
