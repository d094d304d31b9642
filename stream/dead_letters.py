"""Dead-letter records that always fit their topic.

A dead letter keeps the original key and value when they fit the record limit (the
smaller of the producer's ``message.max.bytes`` and the topic's ``max.message.bytes``);
a larger value or key is cut to fit, and headers then give its original size and
sha256. Headers always carry the reason and the source topic, partition and offset.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # ConfigResource: no "as"
    AdminClient,
    ConfigResource,  # defined in the private .admin._config, re-exported without __all__
)

from fraudstream.stream.decisions import MAX_KEY_BYTES

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# Room for the record batch and record framing the broker counts against its limit.
FRAMING_BYTES = 512
MAX_REASON_BYTES = 1024
_TRUNCATED_BYTES = len("truncated") + len("key,value") + 8


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: Headers


def source_headers(message: Message, reason: str) -> Headers:
    """Why a message was rejected and where it came from."""
    text = reason.encode("utf-8", "replace")
    if len(text) > MAX_REASON_BYTES:
        text = text[:MAX_REASON_BYTES - 3] + b"..."
    return [("error", text),
            ("source.topic", (message.topic() or "").encode()),
            ("source.partition", str(message.partition()).encode()),
            ("source.offset", str(message.offset()).encode())]


def dead_letter(message: Message, reason: str, max_record_bytes: int) -> DeadLetter:
    """The dead letter of ``message``, at most ``max_record_bytes`` in all: the key is
    cut first (to an id's length), then the value, and only when they do not fit."""
    headers = source_headers(message, reason)
    key, value = message.key(), message.value()
    budget = max_record_bytes - FRAMING_BYTES
    cut: list[str] = []

    def used() -> int:
        marker = _TRUNCATED_BYTES if cut else 0
        return _size(headers) + len(key or b"") + len(value or b"") + marker

    if key is not None and len(key) > MAX_KEY_BYTES and used() > budget:
        headers += _original("key", key)
        key = key[:MAX_KEY_BYTES]
        cut.append("key")
    if value is not None and used() > budget:
        headers += _original("value", value)
        cut.append("value")
        value = value[:max(0, len(value) - (used() - budget))]
    if cut:
        headers.append(("truncated", ",".join(cut).encode()))
    return DeadLetter(key, value, headers)


def bare_dead_letter(message: Message, reason: str) -> DeadLetter:
    """Headers only: for a dead letter the topic refused even when cut to fit."""
    headers = source_headers(message, reason)
    for name, part in (("key", message.key()), ("value", message.value())):
        if part is not None:
            headers += _original(name, part)
    headers.append(("truncated", b"key,value"))
    return DeadLetter(None, None, headers)


def _original(name: str, part: bytes) -> Headers:
    return [(f"original.{name}.bytes", str(len(part)).encode()),
            (f"original.{name}.sha256", hashlib.sha256(part).hexdigest().encode())]


def _size(headers: Headers) -> int:
    """Bytes of ``headers`` on the wire, with room for their varint framing."""
    return sum(len(name) + len(value) + 8 for name, value in headers)


def record_limit(producer_max_bytes: int, topic_max_bytes: int | None) -> int:
    """The largest record we may produce: what both the client and the topic accept."""
    if topic_max_bytes is None:
        return producer_max_bytes
    return min(producer_max_bytes, topic_max_bytes)


def topic_max_message_bytes(admin: AdminClient, topic: str, timeout: float = 5.0,
                            ) -> int | None:
    """The topic's ``max.message.bytes``, or None when the broker does not say (some
    brokers describe only settings made explicitly) or cannot be asked."""
    try:
        futures = admin.describe_configs([ConfigResource("topic", topic)],
                                         request_timeout=timeout)
        configs = next(iter(futures.values())).result(timeout=timeout)
    except (KafkaException, TimeoutError, ValueError) as exc:
        log.warning("max.message.bytes of topic %s not read (%s): assuming the "
                    "producer's limit", topic, exc)
        return None
    entry = configs.get("max.message.bytes")
    if entry is None or entry.value is None:
        return None
    return int(entry.value)
