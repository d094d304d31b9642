"""Backfill writes on a real Redis and a real Redis Cluster: every key with its TTL,
twice gives identical contents, an interrupted run is completed by running it again,
and a state written since by a worker is never overwritten."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from fraudstream.features.backfill import History, build_states, write_states
from fraudstream.features.cluster_store import state_store_from_url
from fraudstream.features.definitions import DAY_MS
from fraudstream.history.frames import history_of
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.parity import snapshot
from tests.population import recent

TTL_DAYS = 40


@pytest.fixture(scope="module")
def history() -> History:
    frame = simulate(recent(35, customers=120, terminals=200, seed=9))
    return history_of(frame)


def test_backfill_twice_leaves_identical_redis_contents(settings: Settings,
                                                        history: History) -> None:
    store = state_store_from_url(settings.redis_url, False, 5.0)
    states = build_states(history, settings.redis_prefix, TTL_DAYS)
    first = write_states(store, states, settings.redis_prefix, TTL_DAYS)
    before = snapshot(settings)
    second = write_states(store, build_states(history, settings.redis_prefix, TTL_DAYS),
                          settings.redis_prefix, TTL_DAYS)
    assert snapshot(settings) == before
    assert before == states
    assert (first.written, first.unchanged, first.kept) == (len(states), 0, 0)
    assert (second.written, second.unchanged, second.kept) == (0, len(states), 0)
    client = redis.Redis.from_url(settings.redis_url)
    ttls = [client.pttl(key) for key in states]
    client.close()
    assert min(ttls) > (TTL_DAYS - 1) * DAY_MS and max(ttls) <= TTL_DAYS * DAY_MS


def test_an_interrupted_backfill_is_completed_by_running_it_again(
        settings: Settings, history: History) -> None:
    store = state_store_from_url(settings.redis_url, False, 5.0)
    states = build_states(history, settings.redis_prefix, TTL_DAYS)
    keys = sorted(states)
    interrupted = write_states(store, {k: states[k] for k in keys[:len(keys) // 3]},
                               settings.redis_prefix, TTL_DAYS)
    resumed = write_states(store, states, settings.redis_prefix, TTL_DAYS)
    assert resumed.unchanged == interrupted.written == len(keys) // 3
    assert resumed.written == len(keys) - len(keys) // 3
    assert snapshot(settings) == states


def test_a_state_written_since_by_a_worker_is_kept(settings: Settings,
                                                   history: History) -> None:
    store = state_store_from_url(settings.redis_url, False, 5.0)
    states = build_states(history, settings.redis_prefix, TTL_DAYS)
    newer_key = sorted(states)[0]
    client = redis.Redis.from_url(settings.redis_url)
    newer = bytes(states[newer_key][:-1]) + bytes([states[newer_key][-1] ^ 1])
    client.set(newer_key, newer)
    client.close()
    summary = write_states(store, states, settings.redis_prefix, TTL_DAYS)
    assert (summary.kept, summary.written) == (1, len(states) - 1)
    assert snapshot(settings)[newer_key] == newer


def test_backfill_on_a_redis_cluster_writes_the_same_states(
        settings: Settings, history: History, redis_cluster_url: str) -> None:
    store = state_store_from_url(redis_cluster_url, True, 5.0)
    states = build_states(history, settings.redis_prefix, TTL_DAYS)
    first = write_states(store, states, settings.redis_prefix, TTL_DAYS)
    second = write_states(store, states, settings.redis_prefix, TTL_DAYS)
    keys = sorted(states)
    assert store.get_many(keys) == [states[k] for k in keys]
    assert (first.written, second.unchanged) == (len(keys), len(keys))
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        nodes = {client.get_node_from_key(k).name for k in keys}
        assert len(nodes) == 3, "the keys must spread over every node"
        assert min(client.pttl(k) for k in keys) > (TTL_DAYS - 1) * DAY_MS
    finally:
        client.close()
