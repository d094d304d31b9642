"""Producing without ever dropping an event: on a full local queue, serve delivery
reports (which frees room) and try again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import Producer

WAIT_S = 0.05

# The headers Producer.produce takes, as confluent-kafka's stubs spell the list form.
_KafkaHeaders = list[tuple[str, str | bytes | None]]


def produce_or_wait(producer: Producer, topic: str, value: bytes | None, key: bytes | None,
                    on_delivery: Callable[[Any, Any], None] | None = None,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
    # The stubs ask for a List, which is invariant, of (str, str | bytes | None): a list
    # of (str, bytes) pairs is valid headers, but mypy cannot accept it as one.
    kafka_headers = cast("_KafkaHeaders | None", headers)
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery, headers=kafka_headers)
            return
        except BufferError:
            producer.poll(WAIT_S)
