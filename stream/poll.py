"""Take what a consumer has, never wait for a batch to fill."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Message

Consume = Callable[[int, float], list[Message]]


def poll_available(consume: Consume, size: int, timeout: float) -> list[Message]:
    """What has arrived, up to ``size``, waiting at most ``timeout`` for the first
    message only. librdkafka's ``consume(n, t)`` waits the whole ``t`` unless ``n``
    messages arrive: every message of a quiet stream would wait for the timeout. A batch
    is instead what arrived while the last one was processed: the smallest that keeps up."""
    messages = consume(size, 0)
    if messages:
        return messages
    messages = consume(1, timeout)
    if messages and size > 1:
        messages.extend(consume(size - 1, 0))
    return messages
