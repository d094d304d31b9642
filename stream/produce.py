"""Producing without ever dropping an event: on a full local queue, serve delivery
reports (which frees room) and try again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

WAIT_S = 0.05


def produce_or_wait(producer: Producer, topic: str, value: bytes | None, key: bytes | None,
                    on_delivery: Callable[[Any, Any], None] | None = None,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery, headers=headers)
            return
        except BufferError:
            producer.poll(WAIT_S)
