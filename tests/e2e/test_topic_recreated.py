"""The transactions topic deleted and created again under its name, then new events: the
worker finds the new incarnation by its topic id, counts and logs it, and the features of
the new events keep counting (their offsets start again at 0 but are guarded as a new
generation), equal to the offline engine's over every event."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import admin_config
from fraudstream.topics import create_topics
from tests.e2e.cli import worker_process
from tests.e2e.faults import (
    double_counted_customers,
    largest_feature_difference,
    outcome,
    wrong_terminal_counts,
)
from tests.kafka_helpers import make_topics, read_topic
from tests.metrics import scraped
from tests.population import recent
from tests.topic_deletion_probe import consumers_survive_topic_deletion
from tests.waiting import wait_for

PARTITIONS = 4


def _recreate(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    topic = settings.topic_transactions
    admin.delete_topics([topic])[topic].result(15)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, "the topic gone")
    create_topics(settings, PARTITIONS)


def test_parity_after_the_transactions_topic_recreated(settings: Settings,
                                                       tmp_path: Path) -> None:
    survives, probed = consumers_survive_topic_deletion(settings.kafka_bootstrap or "")
    if not survives:
        pytest.skip("the broker under test kills its consumers when their topic is deleted "
                    f"({probed}; librdkafka 2.16 on Tansu 0.6.0 dies of SIGSEGV): run with "
                    "FRAUDSTREAM_KAFKA_BOOTSTRAP on a real Kafka; "
                    "tests/integration/test_topic_identity.py checks the detection here")
    metrics_port = services.free_port()
    settings = settings.replace(emit_features=True, metrics_port=metrics_port)
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(3))
    half = len(frame) // 2
    with worker_process(settings, tmp_path) as worker:
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.5)
        _recreate(settings)
        produce_frame(settings, frame.iloc[half:])
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             settle=2.0, timeout=90)
        assert worker.alive(), f"exit {worker.process.poll()}: {worker.tail()}"
        recreations = scraped(metrics_port, "fraudstream_topic_recreations_total")
        assert worker.stop() == 0, worker.tail()
    decisions = [decision_decoder.decode(r.value) for r in records]
    result = outcome(frame, records)
    worst = largest_feature_difference(frame, decisions)
    result.report("transactions topic recreated", largest_feature_difference=worst)
    assert result.lost == 0 and result.duplicates == 0
    assert worst <= 1e-9, "features froze (or double counted) after the recreation"
    assert double_counted_customers(settings, frame) == []
    assert wrong_terminal_counts(settings, frame) == []
    assert recreations == {"": 1.0}
    assert "was recreated" in worker.log.read_text(), worker.tail()
