"""Small Kafka helpers for tests: produce raw messages, read a whole topic, run a worker."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.settings import Settings
from fraudstream.topics import create_topics
from stream.app import build_worker
from stream.kafka_config import admin_config, downstream_consumer_config, producer_config
from stream.worker import Worker


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


@contextlib.contextmanager
def running_worker(settings: Settings, worker: Worker | None = None) -> Iterator[Worker]:
    """A real worker (real broker, real Redis) on a thread of this process; ``worker``
    when given (built by ``build_worker`` and adjusted), else one built here."""
    worker = worker or build_worker(settings)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
    if failure:
        raise failure[0]
