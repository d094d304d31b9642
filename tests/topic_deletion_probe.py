"""Does a consumer survive its topic being deleted on the broker under test? Probed in a
child process, because on the embedded Tansu 0.6.0 librdkafka 2.16 dies of SIGSEGV
there: tests of a recreated topic say so instead of pretending.

Why, seen with gdb and on the wire: Tansu answers the Fetch that is in flight when the
topic goes (and every later one for its id) with an all-zero topic id, error 3 and a
CurrentLeader tag (leader 0, epoch 0). librdkafka takes the tag for a leader change and
queues a metadata update for a topic with a zero id and no name; its main thread then
looks the topic up in the metadata cache by that NULL name (``rd_kafka_metadata_update_op``
-> ``rd_kafka_metadata_cache_find`` -> ``strcmp(NULL, ...)``), in librdkafka's own thread,
before the application hears of the deletion. No setting avoids it
(``topic.metadata.refresh.interval.ms``, ``allow.auto.create.topics``,
``fetch.wait.max.ms``; ``api.version.request=false`` still fetches with v16), nor does
unsubscribing on the "topic not available" error unless a 50 ms metadata refresh has
already emptied the cache; only a consumer with no fetch in flight (paused before the
deletion) lives. Kafka answers such a Fetch with the requested topic id
(UNKNOWN_TOPIC_ID), which librdkafka looks up by id, not by name.

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

DELETION_KILLS_CONSUMERS = ("a consumer whose topic is deleted dies (librdkafka 2.16 on "
                            "Tansu 0.6.0: SIGSEGV on the Fetch answered with a zero topic id)")


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
