"""Create the project's topics: idempotent, and never shrinking a topic."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # its home; .admin re-exports it without "as"

from fraudstream.errors import TopicError
from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import admin_config
from fraudstream.stream.kafka_errors import ClientErrors

# DescribeConfigs on the embedded broker returns only configs set explicitly, and some
# clients (Quix Streams) need retention to be readable: set it on every topic.
TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000), "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicResult:
    name: str
    partitions: int
    created: bool


def project_topics(settings: Settings) -> list[str]:
    return [settings.topic_transactions, settings.topic_decisions, settings.topic_labels,
            settings.topic_dlq, settings.topic_shadow]


def create_topics(settings: Settings, partitions: int, replication: int = 1,
                  timeout: float = 15.0) -> list[TopicResult]:
    """Create every project topic with ``partitions``; existing ones are left alone.

    Raises TopicError when a topic exists with MORE partitions than asked (shrinking is
    impossible in Kafka), or when a topic has fewer and cannot be grown.
    """
    if partitions < 1:
        raise TopicError("--partitions must be at least 1")
    errors = ClientErrors()
    # A dict[str, Any] of librdkafka settings, callbacks too: AdminClient's annotation
    # lists scalar values only, though admin_config already holds a logger.
    config = admin_config(settings)  # a new dict
    config["error_cb"] = errors
    admin = AdminClient(config)
    names = project_topics(settings)
    existing = _list_topics(admin, errors, settings, timeout)
    results: list[TopicResult] = []
    to_create: list[NewTopic] = []
    for name in names:
        meta = existing.get(name)
        if meta is not None and meta.error is None:
            have = len(meta.partitions)
            if partitions < have:
                raise TopicError(
                    f"topic {name} has {have} partitions; refusing to shrink it to {partitions}"
                )
            if partitions > have:
                _grow(admin, name, have, partitions, timeout)
            results.append(TopicResult(name, partitions, created=False))
        else:
            to_create.append(NewTopic(name, num_partitions=partitions,
                                      replication_factor=replication, config=TOPIC_CONFIG))
    if to_create:
        futures = admin.create_topics(to_create, operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                results.append(TopicResult(name, partitions, created=True))
            except KafkaException as exc:
                error = exc.args[0]
                if error.name() == "TOPIC_ALREADY_EXISTS":
                    results.append(TopicResult(name, partitions, created=False))
                else:
                    raise TopicError(f"cannot create topic {name}: {error.str()}") from None
    order = {name: i for i, name in enumerate(names)}
    return sorted(results, key=lambda r: order[r.name])


def _list_topics(admin: AdminClient, errors: ClientErrors, settings: Settings,
                 timeout: float) -> dict[str, Any]:
    """The broker's topics; a refused login or TLS handshake fails at once, not after
    ``timeout``, with librdkafka's reason."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(admin.list_topics(timeout=min(0.5, timeout)).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves the error callbacks: a refusal says so
            errors.raise_if_refused()
            if time.monotonic() >= deadline:
                raise TopicError(f"cannot reach the broker at {settings.kafka_bootstrap}: "
                                 f"{exc}") from None


def _grow(admin: AdminClient, name: str, have: int, want: int, timeout: float) -> None:
    from confluent_kafka.cimpl import NewPartitions  # see NewTopic's import

    futures = admin.create_partitions([NewPartitions(name, want)], operation_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(
            f"topic {name} has {have} partitions and the broker cannot grow it to {want}: "
            f"{exc.args[0].str()}"
        ) from None


def partition_count(settings: Settings, topic: str, timeout: float = 10.0) -> int:
    admin = AdminClient(admin_config(settings))
    meta = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        raise TopicError(f"topic {topic} does not exist; run `fraudstream topics create`")
    return len(meta.partitions)
