"""stream.group_offsets on the real broker: a worker tells a group that has committed
offsets on the transactions topic (its feature state should exist) from a new one."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.settings import Settings
from fraudstream.stream.group_offsets import group_has_committed
from fraudstream.stream.kafka_config import admin_config, consumer_config
from tests.kafka_helpers import make_topics


def test_only_a_group_with_committed_offsets_on_the_topic_has_state(
        settings: Settings) -> None:
    make_topics(settings, partitions=2)
    admin = AdminClient(admin_config(settings))
    topic = settings.topic_transactions
    assert not group_has_committed(admin, settings.group_id, topic, 10.0)
    consumer = Consumer(consumer_config(settings))
    try:
        consumer.commit(offsets=[TopicPartition(settings.topic_labels, 0, 3)],
                        asynchronous=False)
        assert not group_has_committed(admin, settings.group_id, topic, 10.0), \
            "another topic's offsets say nothing about the transactions"
        consumer.commit(offsets=[TopicPartition(topic, 1, 5)], asynchronous=False)
    finally:
        consumer.close()
    assert group_has_committed(admin, settings.group_id, topic, 10.0)
