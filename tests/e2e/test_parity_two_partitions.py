"""Events of one customer on two partitions, then replayed: the first half of a stream goes
to partition 0 and, once decided, the second half to partition 1 (as when the partition
count grows, or a producer stops keying by customer), so every customer with events in
both halves is guarded on two partitions. The group's offsets are then moved back to the
start and a worker process reads the whole topic again. Each event counts once in the
state Redis is left with, nothing is lost, and every decision not marked degraded equals
the offline engine's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from confluent_kafka import Producer

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import transaction_messages
from fraudstream.stream.kafka_config import producer_config
from tests.e2e.cli import worker_process
from tests.e2e.faults import (
    judged,
    wrong_state,
)
from tests.kafka_helpers import make_topics, read_topic, rewind_group
from tests.population import recent


def produce_to(settings: Settings, frame: pd.DataFrame, partition: int) -> int:
    producer = Producer(producer_config(settings))
    sent = 0
    for key, value in transaction_messages(frame):  # a few thousand: the queue holds them
        producer.produce(settings.topic_transactions, value, key, partition=partition)
        sent += 1
    assert producer.flush(30) == 0
    return sent


def test_parity_after_events_of_one_customer_on_two_partitions_replayed(
        settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(emit_features=True)
    make_topics(settings, partitions=2)
    frame = simulate(recent(3)).sort_values("timestamp", kind="stable").reset_index(drop=True)
    half = len(frame) // 2
    first, second = frame.iloc[:half], frame.iloc[half:]
    on_both = set(first["customer_id"]) & set(second["customer_id"])
    assert len(on_both) > 100, "the scenario needs customers on both partitions"
    with worker_process(settings, tmp_path, name="first-pass") as worker:
        produce_to(settings, first, 0)
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.5)
        produce_to(settings, second, 1)  # after the first half is decided: in time order
        read_topic(settings, settings.topic_decisions, expect=len(frame), settle=0.5)
        assert worker.stop() == 0, worker.tail()
    rewind_group(settings, lambda _: 0)
    with worker_process(settings, tmp_path, name="replay") as worker:
        records = read_topic(settings, settings.topic_decisions, expect=2 * len(frame),
                             settle=2.0)
        assert worker.stop() == 0, worker.tail()
    _, result, worst = judged(frame, records)
    result.report("one customer on two partitions, replayed",
                  customers_on_both=len(on_both),
                  largest_feature_difference=worst)
    assert result.lost == 0 and result.duplicates == len(frame), "every event read twice"
    assert wrong_state(settings, frame) == [], "a replay was counted again"
    assert result.replayed > 0, "the replays of the first partition's events are marked"
    assert worst <= 1e-9, "a decision not marked degraded differs from the offline engine"
