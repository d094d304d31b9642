"""Does a consumer survive its topic being deleted on the broker under test? Probed in a
child process, because on the embedded Tansu 0.6.0 librdkafka 2.16 dies of SIGSEGV
there: tests of a recreated topic say so instead of pretending.

Run as ``python -m tests.topic_deletion_probe BOOTSTRAP``: exit 0 when the consumer
lived through the deletion."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


@functools.lru_cache(maxsize=4)
def consumers_survive_topic_deletion(bootstrap: str) -> tuple[bool, str]:
    """(whether they do, what happened)."""
    child = subprocess.run([sys.executable, "-m", "tests.topic_deletion_probe", bootstrap],
                           capture_output=True, text=True, timeout=120)
    return child.returncode == 0, f"exit {child.returncode}: {child.stdout.strip()}"


def _probe(bootstrap: str) -> None:
    topic = f"deletion-probe-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"probe")
    producer.flush(15)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not [m for m in consumer.consume(10, 0.2) if m.error() is None]:
        if time.monotonic() > deadline:
            raise SystemExit("no record consumed")
    admin.delete_topics([topic])[topic].result(15)
    until = time.monotonic() + 5
    while time.monotonic() < until:
        consumer.consume(10, 0.2)
    consumer.close()
    print("survived")


if __name__ == "__main__":
    _probe(sys.argv[1])
