"""Take what a consumer has, never wait for a batch to fill."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Message

Consume = Callable[[int, float], list[Message]]


def consumed_at(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed message that carries no error:
    librdkafka always sets them (the types say None for messages made by hand)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None, (
        "a consumed message has a topic, a partition and an offset")
    return topic, partition, offset


def commit_offsets(consumer: Consumer, asynchronous: bool) -> None:
    """``consumer.commit(asynchronous=asynchronous)``: its types take only the literal
    True or False, so the flag picks one of the two calls."""
    if asynchronous:
        consumer.commit(asynchronous=True)
    else:
        consumer.commit(asynchronous=False)


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
