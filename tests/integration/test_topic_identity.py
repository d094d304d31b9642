"""stream.topic_identity on the real broker and Redis: the topic's id is read, a topic
deleted and created again under its name is found, counted and logged once however many
workers look, and its events are guarded as the next generation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter

from fraudstream.features.store import RedisStateStore
from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import admin_config
from fraudstream.stream.topic_identity import GENERATION_SHIFT, TopicIdentity, describe_topic_id
from fraudstream.topics import create_topics
from tests.kafka_helpers import make_topics
from tests.metrics import counter_value
from tests.waiting import wait_for

TTL_MS = 60_000


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStateStore]:
    state_store = RedisStateStore.from_url(redis_url)
    yield state_store
    state_store.close()


def identity(settings: Settings, store: RedisStateStore) -> tuple[TopicIdentity, Counter]:
    counter = Counter("recreations", "", registry=CollectorRegistry())
    admin = AdminClient(admin_config(settings))
    topic = settings.topic_transactions
    return TopicIdentity(store, settings.redis_prefix, topic, TTL_MS,
                         describe_topic_id(admin, topic, 10.0), counter), counter


def test_a_recreated_topic_is_the_next_generation(
        settings: Settings, store: RedisStateStore, caplog: pytest.LogCaptureFixture) -> None:
    make_topics(settings, partitions=2)
    first, first_count = identity(settings, store)
    second, second_count = identity(settings, store)
    first.check()
    second.check()
    assert first.topic_id and first.topic_id == second.topic_id
    assert first.base == second.base == 0
    before = first.topic_id
    admin = AdminClient(admin_config(settings))
    topic = settings.topic_transactions
    admin.delete_topics([topic])[topic].result(15)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, "the topic gone")
    create_topics(settings, 2)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.topic_identity"):
        first.check()
        second.check()
        first.check()
    assert first.topic_id != before and first.topic_id == second.topic_id
    assert first.generation == second.generation == 1
    assert first.base == 1 << GENERATION_SHIFT
    assert counter_value(first_count) == counter_value(second_count) == 1
    assert sum("was recreated" in r.getMessage() for r in caplog.records) == 2
