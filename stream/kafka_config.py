"""Settings turned into librdkafka configuration dicts, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fraudstream.settings import Settings

log = logging.getLogger("fraudstream.kafka")


def _librdkafka_log(client: str) -> Any:
    """Route librdkafka's own log lines into ours instead of stderr."""
    return logging.getLogger(f"fraudstream.kafka.{client}")


def common_config(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is not set")
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "fraudstream",
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return {**common_config(settings), "logger": _librdkafka_log("admin")}


def consumer_config(settings: Settings, group_id: str | None = None) -> dict[str, Any]:
    """Consumer of the worker: manual offset store, commits driven by delivery reports."""
    return {
        **common_config(settings),
        "group.id": group_id or settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        # Some brokers (Tansu) hold every fetch this long even when data is there.
        "fetch.wait.max.ms": settings.fetch_wait_ms,
        "logger": _librdkafka_log("consumer"),
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent producer: retries never duplicate or reorder within a partition."""
    return {
        **common_config(settings),
        "client.id": "fraudstream-producer",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "compression.type": "none",
        "queue.buffering.max.messages": settings.producer_queue_messages,
        "logger": _librdkafka_log("producer"),
    }


def transactional_producer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The exactly-once producer: idempotent, and every output in a transaction."""
    return {
        **producer_config(settings),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_ms,
    }


def downstream_consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """A plain reader of an output topic (tests, demo console, downstream services)."""
    return {
        **common_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "logger": _librdkafka_log("reader"),
    }
