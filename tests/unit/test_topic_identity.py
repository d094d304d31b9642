"""stream.topic_identity on the in-memory store: the generation of the topic's
incarnation, agreed by every worker, and what it does to the guard offsets."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from fraudstream.features import customer_state
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore
from fraudstream.stream.topic_identity import GENERATION_SHIFT, TopicIdentity, identity_key
from tests.metrics import counter_value

T0 = 1_522_540_800_000 + 10 * DAY_MS


class Topic:
    """What DescribeTopics answers: the id of the incarnation there now."""

    def __init__(self) -> None:
        self.id: str | None = "id-1"

    def __call__(self) -> str | None:
        return self.id


def watcher(store: MemoryStateStore, topic: Topic) -> tuple[TopicIdentity, Counter]:
    counter = Counter("recreations", "", registry=CollectorRegistry())
    return TopicIdentity(store, "fs", "tx", 60_000, topic, counter), counter


def test_every_worker_agrees_on_one_generation_per_incarnation() -> None:
    store, topic = MemoryStateStore(), Topic()
    (a, a_count), (b, b_count) = watcher(store, topic), watcher(store, topic)
    a.check()
    b.check()
    assert a.generation == b.generation == 0 and a.base == 0
    topic.id = "id-2"
    a.check()
    b.check()
    a.check()
    assert a.generation == b.generation == 1 and b.base == 1 << GENERATION_SHIFT
    assert counter_value(a_count) == counter_value(b_count) == 1
    assert store.get_many([identity_key("fs", "tx")]) == [b"id-2:1"]


def test_a_worker_started_after_the_recreation_finds_it_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """The worker that read the old incarnation died (restarted by its supervisor): the
    restarted one sees the recreation against the stored id, counts and logs it; one that
    starts once the generation has moved on has nothing to report."""
    store, topic = MemoryStateStore(), Topic()
    died, _ = watcher(store, topic)
    died.check()
    topic.id = "id-2"
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.topic_identity"):
        restarted, restarted_count = watcher(store, topic)
        restarted.check()
        later, later_count = watcher(store, topic)
        later.check()
    assert restarted.generation == later.generation == 1
    assert counter_value(restarted_count) == 1 and counter_value(later_count) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "topic tx was recreated (id id-2, was id-1): its events are guarded as generation 1, "
        "so features keep counting"]


def test_a_worker_started_on_the_same_incarnation_finds_no_recreation() -> None:
    store, topic = MemoryStateStore(), Topic()
    for _ in range(2):
        worker, count = watcher(store, topic)
        worker.check()
        assert worker.generation == 0 and counter_value(count) == 0


def test_a_broker_that_cannot_say_keeps_the_generation() -> None:
    store, topic = MemoryStateStore(), Topic()
    worker, count = watcher(store, topic)
    worker.check()
    topic.id = None
    worker.check()
    assert worker.generation == 0 and worker.topic_id == "id-1" and counter_value(count) == 0


def test_the_key_lost_with_the_state_keeps_the_generation_known() -> None:
    store, topic = MemoryStateStore(), Topic()
    worker, _ = watcher(store, topic)
    worker.check()
    topic.id = "id-2"
    worker.check()
    store.data.clear()
    worker.check()
    assert worker.generation == 1
    topic.id = "id-3"
    store.data.clear()
    worker.check()
    assert worker.generation == 2


def batch(offsets: list[int], base: int) -> TransactionBatch:
    n = len(offsets)
    return TransactionBatch(["c"] * n, ["t"] * n,
                            np.array([T0 + 60_000 * i for i in range(n)], dtype=np.int64),
                            np.full(n, 10.0), np.zeros(n, dtype=np.int64),
                            np.array(offsets, dtype=np.int64) + base)


def count_after_recreation(base: int) -> int:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    for b in (batch([0, 1, 2, 3, 4], 0), batch([0, 1], base)):
        _, pending = fs.fetch(b)
        fs.update(pending)
    return sum(customer_state.decode(store.get_many([b"fs:c:c"])[0]).counts)


def test_the_next_generations_events_count_where_bare_offsets_would_freeze() -> None:
    assert count_after_recreation(1 << GENERATION_SHIFT) == 7
    assert count_after_recreation(0) == 5, "offsets from 0 again look like replays"


def test_a_worker_starting_while_the_broker_cannot_say_guards_with_the_stored_generation(
        ) -> None:
    """DescribeTopics failing at start (the topic deleted, not yet created again, or the
    broker slow) must not make a fresh worker guard with generation 0: the stored one is
    used until the broker says which incarnation it is."""
    store, topic = MemoryStateStore(), Topic()
    running, _ = watcher(store, topic)
    running.check()
    topic.id = "id-2"
    running.check()
    assert running.generation == 1
    topic.id = None
    fresh, count = watcher(store, topic)
    fresh.check()
    assert fresh.generation == 1 and fresh.topic_id is None
    topic.id = "id-2"
    fresh.check()
    assert fresh.generation == 1 and fresh.topic_id == "id-2"
    assert counter_value(count) == 0  # the same incarnation: no recreation to report
