"""Produce errors, classified once for every output a worker or label reader writes.

record     this one record can never be written (too large, invalid, corrupt): its
           input goes to the dead-letter topic and the worker goes on.
topic      no record can be written to that topic (unknown, not authorised): the worker
           ends, once, with one line and exit code 7; readiness fails before that.
transient  anything else (a timeout, a broker away): produce the same record again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from fraudstream.errors import FraudstreamError


class OutputTopicError(FraudstreamError):
    """An output topic refuses every record: restarting with the same settings cannot
    help, so a supervisor must not restart the worker."""

    exit_code = 7


class Failure(enum.Enum):
    RECORD = "record"
    TOPIC = "topic"
    TRANSIENT = "transient"


RECORD_CODES = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError._BAD_MSG,
    KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, KafkaError._INVALID_ARG,
    KafkaError.POLICY_VIOLATION,
})
TOPIC_CODES = frozenset({
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TOPIC_EXCEPTION,
})


def classify(error: KafkaError) -> Failure:
    code = error.code()
    if code in RECORD_CODES:
        return Failure.RECORD
    if code in TOPIC_CODES:
        return Failure.TOPIC
    return Failure.TRANSIENT


def topic_failure(topic: str, error: KafkaError) -> OutputTopicError:
    return OutputTopicError(
        f"cannot write to topic {topic}: {error.str()} (create it with `fraudstream topics "
        f"create`, or grant this principal write access)")


def missing_topics(list_topics: Callable[..., Any], topics: list[str],
                   timeout: float = 5.0) -> list[str] | None:
    """Which of ``topics`` the cluster does not have; None when it cannot be asked now
    (a broker away is the broker watch's concern, not a topic error)."""
    try:
        known = list_topics(timeout=timeout).topics
    except KafkaException:
        return None
    return [topic for topic in topics
            if topic not in known or known[topic].error is not None]


def missing_topic_failure(topics: list[str]) -> OutputTopicError:
    return OutputTopicError(
        f"output topic{'s' if len(topics) > 1 else ''} {', '.join(topics)} "
        f"{'do' if len(topics) > 1 else 'does'} not exist (create them with `fraudstream "
        f"topics create`)")
