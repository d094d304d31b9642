"""A committed offset the broker no longer has (here: one past the end of the topic, as
after the topic was recreated) is reset by ``auto.offset.reset`` (explicit, default
earliest), and the reset is logged and counted instead of leaving the worker silently
idle (quix-streams #1114)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from fraudstream.settings import Settings
from fraudstream.stream.app import build_worker
from fraudstream.stream.kafka_config import consumer_config
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.waiting import wait_for


def _broker_resets_past_the_end(settings: Settings) -> bool:
    """Does the broker answer a fetch past the end with OFFSET_OUT_OF_RANGE (Kafka does;
    the embedded Tansu returns nothing, so no client ever resets)?"""
    consumer = Consumer({**consumer_config(settings, f"probe-{time.time_ns()}"),
                         "logger": logging.getLogger("probe")})
    consumer.assign([TopicPartition(settings.topic_transactions, 0, 1000)])
    try:
        # Reset to earliest: a record (or the reset error) comes within a few polls.
        wait_for(lambda: consumer.poll(0.2) is not None, "a record after the reset", 5, 0)
    except AssertionError:
        return False
    finally:
        consumer.close()
    return True


def test_a_committed_offset_past_the_end_is_reset_logged_and_counted(
        settings: Settings) -> None:
    make_topics(settings, partitions=1)
    now = int(time.time() * 1000)
    events = [{"transaction_id": f"r{i}", "timestamp": now - 60_000, "customer_id": f"c{i}",
               "terminal_id": "m", "amount": 10.0 + i} for i in range(10)]
    produce_raw(settings, settings.topic_transactions,
                [(e["customer_id"].encode(), json.dumps(e).encode())
                 for e in events])
    if not _broker_resets_past_the_end(settings):
        pytest.skip("the embedded broker (Tansu) answers a fetch past the end with no "
                    "error, so no client resets: run with FRAUDSTREAM_KAFKA_BOOTSTRAP on "
                    "Kafka to check resets end to end (the counting is unit-tested)")
    committer = Consumer(consumer_config(settings))
    committer.commit(offsets=[TopicPartition(settings.topic_transactions, 0, 1000)],
                     asynchronous=False)
    committer.close()
    registry = CollectorRegistry()
    with running_worker(settings, build_worker(settings, registry)):
        decisions = read_topic(settings, settings.topic_decisions, expect=10, timeout=60)
    assert len(decisions) == 10, "reset to earliest: every event is decided"
    assert (registry.get_sample_value("fraudstream_offset_resets_total") or 0) >= 1
