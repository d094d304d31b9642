"""Messages a careless or hostile producer sends, each named: the corpus the worker and the
HTTP scorer must survive. Each case is decided (a valid event after all) or dead-lettered
with a reason; which one is what ``stream.events`` says of its bytes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    key: bytes | None
    value: bytes | None


def event(transaction_id: str, now_ms: int | None = None, **changes: object) -> dict[str, object]:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    fields: dict[str, object] = {"transaction_id": transaction_id,
                                 "timestamp": now_ms - 60_000, "customer_id": "c-hostile",
                                 "terminal_id": "m-hostile", "amount": 42.5}
    fields.update(changes)
    return fields


def _json(fields: dict[str, object]) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def _with_raw(fields: dict[str, object], name: str, raw: bytes) -> bytes:
    """``fields`` as JSON with one more field whose value is the raw JSON ``raw``."""
    return _json(fields)[:-1] + b"," + json.dumps(name).encode() + b":" + raw + b"}"


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def corpus() -> list[Case]:
    """At least forty hostile cases, their transaction ids unique (``h<number>``)."""
    now = int(time.time() * 1000)

    def ev(n: int, **changes: object) -> dict[str, object]:
        return event(f"h{n}", now, **changes)

    cases = [
        Case("ignored field nested 1,000 deep (2 KB)", b"c1", _with_raw(ev(1), "x",
                                                                       _nested(1000))),
        Case("ignored field nested 100,000 deep", b"c1", _with_raw(ev(2), "x",
                                                                  _nested(100_000))),
        Case("amount nested 40 deep", b"c1", _with_raw(
            {k: v for k, v in ev(3).items() if k != "amount"}, "amount",
            b"[" * 40 + b"1" + b"]" * 40)),
        Case("ignored field nested 20 deep (within the limit)", b"c1",
             _with_raw(ev(4), "x", _nested(20))),
        Case("value of 1.2 MB", b"c1", _with_raw(ev(5), "x",
                                                 json.dumps("v" * (MB + MB // 5)).encode())),
        Case("value of 5 MB", b"c1", _with_raw(ev(6), "x", json.dumps("v" * 5 * MB).encode())),
        Case("key of 1.2 MB, valid event", b"k" * (MB + MB // 5), _json(ev(7))),
        Case("key of 1.2 MB, invalid event", b"k" * (MB + MB // 5), b"{not json"),
        Case("key of 2 MB and value of 2 MB", b"k" * 2 * MB, b"v" * 2 * MB),
        Case("no value (null)", b"c1", None),
        Case("empty value", b"c1", b""),
        Case("invalid UTF-8 in an id", b"c1", _json(ev(12))[:-1] + b',"terminal_id":"\xff\xfe"}'),
        Case("UTF-8 byte order mark", b"c1", b"\xef\xbb\xbf" + _json(ev(13))),
        Case("UTF-16 with its mark", b"c1", json.dumps(ev(14)).encode("utf-16")),
        Case("duplicate amount keys", b"c1", _with_raw(ev(15), "amount", b'"x"')),
        Case("5,000-digit integer id", b"c1", _with_raw(
            {k: v for k, v in ev(16).items() if k != "customer_id"}, "customer_id",
            b"9" * 5000)),
        Case("lone surrogate in an id", b"c1", _with_raw(
            {k: v for k, v in ev(17).items() if k != "customer_id"}, "customer_id",
            b'"\\ud800"')),
        Case("amount NaN", b"c1", _with_raw(
            {k: v for k, v in ev(18).items() if k != "amount"}, "amount", b"NaN")),
        Case("amount 1e999", b"c1", _with_raw(
            {k: v for k, v in ev(19).items() if k != "amount"}, "amount", b"1e999")),
        Case("negative amount", b"c1", _json(ev(20, amount=-5))),
        Case("zero amount", b"c1", _json(ev(21, amount=0))),
        Case("amount as text", b"c1", _json(ev(22, amount="12.50"))),
        Case("amount above the limit", b"c1", _json(ev(23, amount=1e12))),
        Case("amount field missing", b"c1", _json({k: v for k, v in ev(24).items()
                                                   if k != "amount"})),
        Case("timestamp without a zone", b"c1", _json(ev(25, timestamp="2026-12-03T10:00:00"))),
        Case("timestamp a year ahead", b"c1", _json(ev(26, timestamp=now + 365 * 86_400_000))),
        Case("timestamp two years old", b"c1", _json(ev(27, timestamp=now - 730 * 86_400_000))),
        Case("timestamp 1e400", b"c1", _with_raw(
            {k: v for k, v in ev(28).items() if k != "timestamp"}, "timestamp", b"1e400")),
        Case("id of 129 characters", b"c1", _json(ev(29, terminal_id="t" * 129))),
        Case("empty id", b"c1", _json(ev(30, customer_id=""))),
        Case("JSON array", b"c1", b"[1, 2, 3]"),
        Case("JSON string", b"c1", b'"a transaction"'),
        Case("JSON null", b"c1", b"null"),
        Case("truncated JSON", b"c1", _json(ev(34))[:40]),
        Case("random bytes", b"c1", bytes(range(256)) * 4),
        Case("trailing garbage", b"c1", _json(ev(36)) + b" {}"),
        Case("id as a float", b"c1", _json(ev(37, customer_id=37.5))),
        Case("is_fraud-like boolean amount", b"c1", _json(ev(38, amount=True))),
        Case("unknown nested fields within the limit", b"c1",
             _json(ev(39, extra={"a": [1, {"b": [2, 3]}], "c": None}))),
        Case("emoji ids", b"c1", _json(ev(40, customer_id="\U0001f600\u00e9",
                                          terminal_id="\u20ac"))),
        Case("integer ids", b"c1", _json(ev(41, customer_id=41, terminal_id=4141))),
        Case("RFC 3339 timestamp with a zone", b"c1", _json(ev(
            42, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now / 1000 - 60))))),
        Case("no key, valid event", None, _json(ev(43))),
        Case("empty key, valid event", b"", _json(ev(44))),
        Case("whitespace around a valid event", b"c1", b"  \n\t" + _json(ev(45)) + b"\n  "),
        Case("NUL in an id", b"c1", _json(ev(46, terminal_id="m\u0000m"))),
        Case("field name of 2 MB", b"c1", _with_raw(ev(47), "q" * 2 * MB, b"1")),
        Case("empty field name", b"c1", _with_raw(ev(48), "", b"1")),
    ]
    return cases


def produce_with_aiokafka(bootstrap: str, topic: str,
                          messages: list[tuple[bytes | None, bytes | None]],
                          partitions: int) -> None:
    """Produce ``messages`` in order, round-robin over ``partitions``, with aiokafka: a
    Kafka client of its own (not librdkafka), allowed records of up to 16 MB."""

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                                    max_request_size=16 * MB, enable_idempotence=False)
        await producer.start()
        try:
            for n, (key, value) in enumerate(messages):
                await producer.send_and_wait(topic, value, key=key, partition=n % partitions)
        finally:
            await producer.stop()

    asyncio.run(produce())
