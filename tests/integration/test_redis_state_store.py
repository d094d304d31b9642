"""features.store.RedisStateStore on a real Redis: a write sent ahead and the next read
share one connection, in order, and a failed reply never poisons the pool."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from fraudstream import services
from fraudstream.features.definitions import COL_COUNT
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import RedisStateStore, supports_guarded_set


@pytest.fixture(params=[True, False], ids=["guarded-set", "lua-script"])
def store(redis_url: str, request: pytest.FixtureRequest) -> Iterator[RedisStateStore]:
    """Both ways of writing: SET ... IFEQ per key and the Lua compare-and-set."""
    state_store = RedisStateStore.from_url(redis_url)
    if request.param and not supports_guarded_set(state_store.client):
        pytest.skip("this Redis has no SET ... IFEQ")
    state_store = RedisStateStore(state_store.client, guarded_set=request.param)
    yield state_store
    state_store.close()


def keys(n: int) -> list[bytes]:
    prefix = uuid.uuid4().hex.encode()
    return [prefix + b":" + str(i).encode() for i in range(n)]


def test_the_read_after_a_sent_write_sees_the_write(store: RedisStateStore) -> None:
    k = keys(3)
    sent = store.send_compare_and_set_many(k[:2], [None, None], [b"a", b"b"], 60_000)
    conflicts, values = store.get_many_after(sent, k)
    assert conflicts == []
    assert values == [b"a", b"b", None]


def test_conflicts_of_a_sent_write_come_back_with_the_read(store: RedisStateStore) -> None:
    k = keys(2)
    store.client.set(k[0], b"someone else")
    sent = store.send_compare_and_set_many(k, [None, None], [b"a", b"b"], 60_000)
    conflicts, values = store.get_many_after(sent, k)
    assert conflicts == [0]
    assert values == [b"someone else", b"b"]


def test_a_failed_write_reply_drops_its_connection(store: RedisStateStore) -> None:
    k = keys(1)
    store.client.set(k[0], b"old")
    store.client.execute_command("CONFIG", "SET", "maxmemory", "1")
    try:
        sent = store.send_compare_and_set_many(k, [b"old"], [b"new"], 60_000)
        with pytest.raises(redis.ResponseError):
            store.get_many_after(sent, k)
    finally:
        store.client.execute_command("CONFIG", "SET", "maxmemory", "0")
    # Every pooled connection is clean: the MGET reply left behind was never read.
    for _ in range(5):
        assert store.get_many(k) == [b"old"]


def test_online_store_reads_a_batch_behind_its_own_write(store: RedisStateStore) -> None:
    online = OnlineFeatureStore(store, prefix=uuid.uuid4().hex)
    day = 20_000 * 86_400_000

    def batch(offset: int) -> TransactionBatch:
        return TransactionBatch(["c1"], ["t1"], np.array([day + offset], np.int64),
                                np.array([10.0]), np.array([0], np.int64),
                                np.array([offset], np.int64))

    counts = []
    for offset in range(4):
        matrix, pending = online.fetch(batch(offset))
        online.begin_update(pending)  # completed by the next fetch, in its round trip
        counts.append(int(matrix[0, COL_COUNT[1]]))
    assert online.complete_update() == 0
    assert online.take_conflicts() == 0
    assert counts == [1, 2, 3, 4]


def test_a_value_changed_since_it_was_read_is_a_conflict(store: RedisStateStore) -> None:
    k = keys(3)
    store.client.set(k[0], b"read")
    store.client.set(k[1], b"read")
    assert store.compare_and_set_many(k[:2], [b"read", b"read"], [b"x", b"y"], 60_000) == []
    store.client.set(k[1], b"someone else")
    conflicts = store.compare_and_set_many(k, [b"x", b"read", None], [b"1", b"2", b"3"],
                                           60_000)
    assert conflicts == [1]
    assert store.get_many(k) == [b"1", b"someone else", b"3"]
    assert 0 < store.client.pttl(k[0]) <= 60_000


def test_the_embedded_valkey_writes_with_guarded_sets(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    if "valkey_version" not in client.info("server"):
        pytest.skip("a configured Redis, not the embedded valkey")
    assert RedisStateStore(client).guarded_set


@pytest.mark.skipif(not shutil.which("redis-server"), reason="no redis-server on PATH")
def test_a_redis_without_ifeq_writes_with_the_script() -> None:
    """Debian's redis-server (7.x) has no SET ... IFEQ: the store uses the Lua script."""
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = services.start_process(
        "redis7", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no"], lambda: services.redis_answers(url))
    try:
        store = RedisStateStore.from_url(url)
        info = store.client.info("server")
        if "valkey_version" in info or not str(info["redis_version"]).startswith("7."):
            pytest.skip(f"redis-server on PATH is not Redis 7 but {info['redis_version']}")
        assert not store.guarded_set
        k = keys(2)
        assert store.compare_and_set_many(k, [None, None], [b"a", b"b"], 60_000) == []
        assert store.compare_and_set_many(k, [b"a", None], [b"c", b"d"], 60_000) == [1]
        assert store.get_many(k) == [b"c", b"b"]
        store.close()
    finally:
        server.stop()


def test_a_write_too_large_for_one_socket_write_is_finished_before_the_next_read(
        store: RedisStateStore) -> None:
    # 80 MB: on loopback one send() takes what the sending socket buffers (4 MB at most
    # by default) plus what the receiving one has room for (32 MB at most), so the socket
    # cannot take it all at once even while Redis reads from the other end.
    k = keys(400)
    old = [bytes([i % 251]) * 100_000 for i in range(400)]
    assert store.compare_and_set_many(k, [None] * 400, old, 60_000) == []
    store.client.set(k[7], b"someone else")
    new = [value[::-1] + b"!" for value in old]
    assert sum(map(len, old + new)) > 80_000_000
    sent = store.send_compare_and_set_many(k, old, new, 60_000)
    # the part of the write the socket did not take at once
    assert len(sent._rest) > 0, "the socket took the whole write"
    conflicts, values = store.get_many_after(sent, k)
    assert conflicts == [7]
    assert values == [b"someone else" if i == 7 else v for i, v in enumerate(new)]
