"""Small Kafka helpers for tests: produce raw messages, read a whole topic, run a worker."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.app import build_worker
from fraudstream.stream.decisions import Decision, decision_decoder
from fraudstream.stream.kafka_config import (
    admin_config,
    consumer_config,
    downstream_consumer_config,
    producer_config,
)
from fraudstream.stream.labels_reader import labels_group
from fraudstream.stream.worker import Worker
from fraudstream.topics import create_topics
from tests.population import recent


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int


def produce_raw(settings: Settings, topic: str,
                messages: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(producer_config(settings))
    for key, value in messages:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0, "test messages were not delivered"


def read_topic(settings: Settings, topic: str, expect: int, timeout: float = 60.0,
               settle: float = 1.0) -> list[Record]:
    """Every record of ``topic`` from the beginning: waits for ``expect`` records, then
    ``settle`` more seconds so that duplicates would show up too."""
    admin = AdminClient(admin_config(settings))
    partitions = admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
    consumer = Consumer(downstream_consumer_config(settings, f"reader-{time.time_ns()}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            fresh = [m for m in batch if m.error() is None]
            records.extend(Record(m.key(), m.value(), dict(m.headers() or []), m.partition(),
                                  m.offset()) for m in fresh)
            if len(records) >= expect:
                if fresh:
                    quiet_since = time.monotonic()
                elif quiet_since is not None and time.monotonic() - quiet_since >= settle:
                    break
                quiet_since = quiet_since or time.monotonic()
    finally:
        consumer.close()
    return records


def make_topics(settings: Settings, partitions: int = 4) -> None:
    create_topics(settings, partitions)


class WorkerThread(threading.Thread):
    """``worker.run()`` on a thread; what it raised, if anything, in ``failure``."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name="worker", daemon=True)
        self.worker = worker
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.failure = exc


@contextlib.contextmanager
def running_worker(settings: Settings, worker: Worker | None = None) -> Iterator[Worker]:
    """A real worker (real broker, real Redis) on a thread of this process; ``worker``
    when given (built by ``build_worker`` and adjusted), else one built here."""
    thread = WorkerThread(worker or build_worker(settings))
    thread.start()
    try:
        yield thread.worker
    finally:
        thread.worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
    if thread.failure is not None:
        raise thread.failure


def decide_simulated_stream(settings: Settings, days: int = 2) -> tuple[int, list[Decision]]:
    """Simulated transactions of ``days`` through a real worker: how many were sent, and
    every decision read back."""
    make_topics(settings, partitions=2)
    sent = produce_frame(settings, simulate(recent(days)))
    with running_worker(settings):
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=0.5)
    return sent, [decision_decoder.decode(r.value) for r in records]


def rewind_group(settings: Settings, to_offset: Callable[[int], int]) -> int:
    """Move the groups' committed offsets back (transactions and labels each have their
    group), as a crash before a commit would; returns how many messages will be consumed
    again."""
    rewound = 0
    for topic, group in ((settings.topic_transactions, settings.group_id),
                         (settings.topic_labels, labels_group(settings))):
        consumer = Consumer(consumer_config(settings, group))
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions],
                                           timeout=10)
            offsets = [TopicPartition(tp.topic, tp.partition, to_offset(tp.offset))
                       for tp in committed]
            rewound += sum(tp.offset - to_offset(tp.offset) for tp in committed)
            consumer.commit(offsets=offsets, asynchronous=False)
            after = consumer.committed(offsets, timeout=10)
            assert [tp.offset for tp in after] == [tp.offset for tp in offsets]
        finally:
            consumer.close()
    return rewound
