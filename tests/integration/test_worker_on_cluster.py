"""A worker whose feature store is a three-node Redis Cluster decides exactly as one on a
single Redis: the same stream gives the same feature vectors, event for event."""

from __future__ import annotations

import uuid

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import recent


def _features_by_transaction(settings: Settings, expect: int) -> dict[str, dict[str, float]]:
    with running_worker(settings):
        records = read_topic(settings, settings.topic_decisions, expect=expect, settle=0.5)
    decisions = [decision_decoder.decode(r.value) for r in records]
    assert all(not d.degraded for d in decisions)
    return {d.transaction_id: d.features or {} for d in decisions}


def test_cluster_and_single_redis_give_the_same_features(settings: Settings,
                                                         redis_cluster_url: str) -> None:
    frame = simulate(recent(5))
    single = settings.replace(emit_features=True)
    make_topics(single, partitions=1)  # one partition: both see one arrival order
    sent = produce_frame(single, frame)
    on_cluster = single.replace(redis_url=redis_cluster_url, redis_cluster=True,
                                group_id=f"cluster-{uuid.uuid4().hex[:8]}",
                                topic_decisions=f"{single.topic_decisions}-cluster")
    make_topics(on_cluster, partitions=1)
    expected = _features_by_transaction(single, sent)
    actual = _features_by_transaction(on_cluster, sent)
    assert len(expected) == len(actual) == sent
    assert actual == expected
