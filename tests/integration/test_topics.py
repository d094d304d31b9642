from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from fraudstream.errors import TopicError
from fraudstream.settings import Settings
from fraudstream.topics import create_topics, project_topics


def test_create_is_idempotent_and_complete(settings: Settings) -> None:
    first = create_topics(settings, 3)
    assert [r.name for r in first] == project_topics(settings)
    assert all(r.created for r in first)
    second = create_topics(settings, 3)
    assert [r.created for r in second] == [False] * len(project_topics(settings))
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    for name in project_topics(settings):
        assert len(topics[name].partitions) == 3


def test_refuses_to_shrink(settings: Settings) -> None:
    create_topics(settings, 4)
    with pytest.raises(TopicError, match=r"has 4 partitions; refusing to shrink it to 2"):
        create_topics(settings, 2)


def test_growing_either_works_or_says_the_broker_cannot(settings: Settings) -> None:
    create_topics(settings, 2)
    try:
        results = create_topics(settings, 3)
    except TopicError as exc:  # the embedded broker has no CreatePartitions (FACTS.md)
        assert "cannot grow it to 3" in str(exc)
        assert "\n" not in str(exc)
        pytest.skip(f"broker does not support CreatePartitions: {exc}")
    assert all(r.partitions == 3 for r in results)


def test_zero_partitions_is_an_error(settings: Settings) -> None:
    with pytest.raises(TopicError, match="at least 1"):
        create_topics(settings, 0)
