"""stream.quality_store.RedisLiveQuality on a real Redis: the join outlives its object."""

from __future__ import annotations

import uuid

import pytest
import redis

from fraudstream.stream.quality_store import DECISION, RedisLiveQuality


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def prefix() -> str:
    return f"test-q-{uuid.uuid4().hex[:8]}:"


def test_pairs_join_in_either_order_and_measure_per_version(client: redis.Redis,
                                                             prefix: str) -> None:
    live = RedisLiveQuality(client, horizon_days=1, prefix=prefix)
    assert live.add([("a", 0.9, True, "v1"), ("b", 0.8, True, "v1"), ("c", 0.2, False, "v1")],
                    [("d", True)]) == 0
    assert live.add([("d", 0.1, False, "v2")], [("a", True), ("b", False), ("c", True)]) == 4
    by_version = live.measure_by_version()
    assert set(by_version) == {"v1", "v2"}
    v1 = by_version["v1"]
    assert (v1.labelled, v1.frauds, v1.precision, v1.recall) == (3, 2, 0.5, 0.5)
    assert by_version["v2"].recall == 0.0
    assert live.measure().labelled == 4
    assert live.unmatched_labels == 0
    assert client.keys(prefix + "d:*") == [] and client.keys(prefix + "l:*") == []


def test_waiting_state_is_compact_and_expires_after_the_horizon(client: redis.Redis,
                                                                prefix: str) -> None:
    live = RedisLiveQuality(client, horizon_days=2, prefix=prefix)
    live.add([("tx-1", 0.7, True, "v1")], [("tx-2", True)])
    assert client.strlen(prefix + "d:tx-1") == DECISION.size == 7
    assert client.strlen(prefix + "l:tx-2") == 1
    for key in (prefix + "d:tx-1", prefix + "l:tx-2"):
        assert 2 * 86_400 - 60 < client.ttl(key) <= 2 * 86_400
    assert live.unmatched_labels == 1
    live.add([], [("tx-2", True)])  # a replayed label waits once
    assert live.unmatched_labels == 1
    live.add([("tx-3", 0.1, False, "v1")], [("tx-1", True)])
    assert client.ttl(prefix + "j:1") > 0
    assert client.strlen(prefix + "d:tx-3") == 7
    keys = client.keys(prefix + "*")
    assert len(keys) >= 6 and all(client.ttl(key) > 0 for key in keys)  # nothing stays


def test_a_new_object_joins_what_an_old_one_stored(client: redis.Redis, prefix: str) -> None:
    before = RedisLiveQuality(client, prefix=prefix)
    before.add([(str(i), i / 10, i >= 5, "v1") for i in range(10)], [])
    del before  # the monitor restarts: nothing is kept in the process
    after = RedisLiveQuality(client, prefix=prefix)
    assert after.add([], [(str(i), i >= 7) for i in range(10)]) == 10
    quality = after.measure_by_version()["v1"]
    assert (quality.labelled, quality.frauds) == (10, 3)
    assert quality.precision == pytest.approx(3 / 5) and quality.recall == 1.0
    assert quality.average_precision == pytest.approx(1.0)


def test_the_window_keeps_each_versions_most_recent_pairs(client: redis.Redis,
                                                          prefix: str) -> None:
    live = RedisLiveQuality(client, window=3, prefix=prefix)
    live.add([(str(i), 0.9 if i < 5 else 0.1, i < 5, "v1") for i in range(10)], [])
    live.add([], [(str(i), True) for i in range(10)])
    quality = live.measure()
    assert quality.labelled == 3 and quality.recall == 0.0


def test_a_replayed_batch_joins_each_pair_once(client: redis.Redis, prefix: str) -> None:
    """A monitor that crashed after its join but before its commit reads the same records
    again: nothing joins twice, and nothing waits again."""
    live = RedisLiveQuality(client, prefix=prefix)
    decisions = [(str(i), i / 10, i >= 5, "v1") for i in range(10)]
    labels = [(str(i), i >= 7) for i in range(10)]
    assert live.add(decisions, []) == 0
    assert live.add([], labels) == 10
    assert live.add(decisions, labels) == 0  # the replay, in one batch
    assert live.add([], labels) == 0
    assert live.add(decisions, []) == 0
    quality = live.measure_by_version()["v1"]
    assert (quality.labelled, quality.frauds) == (10, 3)
    assert live.unmatched_labels == 0
    assert client.keys(prefix + "d:*") == [] and client.keys(prefix + "l:*") == []
    assert all(client.ttl(key) > 0 for key in client.keys(prefix + "x:*"))
