"""features.store.RedisStateStore on a real Redis: a write sent ahead and the next read
share one connection, in order, and a failed reply never poisons the pool."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from features.definitions import COL_COUNT
from features.online import OnlineFeatureStore, TransactionBatch
from features.store import RedisStateStore


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStateStore]:
    state_store = RedisStateStore.from_url(redis_url)
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
