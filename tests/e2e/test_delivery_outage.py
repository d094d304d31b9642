"""Decisions that cannot be delivered for a while: the worker's producer is held back by a
proxy in front of the broker. The worker must not crash on a full queue, must pause
consumption, must commit only what was delivered, and must lose nothing afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.stream.kafka_config import downstream_consumer_config
from tests.e2e.cli import worker_process
from tests.e2e.faults import PacedLoad, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.kafka_proxy import KafkaProxy, proxied_broker
from tests.population import recent

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

PARTITIONS = 4
OUTAGE_S = 6.0


@pytest.fixture
def proxied() -> Iterator[tuple[str, KafkaProxy]]:
    with proxied_broker() as broker:
        yield broker


def _committed_and_delivered(settings: Settings) -> tuple[int, int]:
    """(input offsets the group committed, decisions in the output topic), summed. The
    decisions are counted by reading them, after the commits were read: the broker's
    high watermarks are not exact under batching (Tansu's ListOffsets)."""
    reader = Consumer(downstream_consumer_config(settings, settings.group_id))
    try:
        committed = reader.committed([TopicPartition(settings.topic_transactions, p)
                                      for p in range(PARTITIONS)], timeout=10)
    finally:
        reader.close()
    total = sum(max(0, tp.offset) for tp in committed)
    delivered = read_topic(settings, settings.topic_decisions, expect=total, timeout=10,
                           settle=0.3)
    return total, len(delivered)


def test_undeliverable_decisions_pause_consumption_and_lose_nothing(
        settings: Settings, tmp_path: Path, proxied: tuple[str, KafkaProxy]) -> None:
    bootstrap, proxy = proxied
    settings = settings.replace(kafka_bootstrap=bootstrap, producer_queue_messages=300)
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(4))
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 14.0)
        load.start()
        worker.wait_processed(len(frame) // 5)  # well into the stream
        proxy.hold("fraudstream-producer")
        time.sleep(OUTAGE_S)  # the fault itself: decisions undeliverable this long
        committed, delivered = _committed_and_delivered(settings)
        assert worker.alive(), worker.tail()
        proxy.release("fraudstream-producer")
        released = time.monotonic()
        sent = load.finish(timeout=90)
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0,
                             timeout=90)
        caught_up_s = time.monotonic() - released
        assert worker.stop() == 0, worker.tail()
    result = outcome(frame, records)
    result.report("decisions undeliverable 6 s", committed_during=committed,
                  delivered_during=delivered, caught_up_s=round(caught_up_s, 2))
    text = worker.log.read_text()
    assert committed <= delivered, "offsets were committed for undelivered decisions"
    assert "consumption paused" in text and "consumption resumed" in text, text[-3000:]
    assert "BufferError" not in text and "Traceback" not in text
    assert result.lost == 0
