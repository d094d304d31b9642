"""stream.dead_letters and stream.output_errors: dead letters always fit their topic, and
produce errors are classified once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError

from fraudstream.stream.dead_letters import (
    FRAMING_BYTES,
    bare_dead_letter,
    dead_letter,
    record_limit,
)
from fraudstream.stream.decisions import MAX_KEY_BYTES
from fraudstream.stream.output_errors import Failure, classify, missing_topics

LIMIT = 1_000_000


@dataclass
class SourceMessage:
    """What a dead letter reads of a consumed message."""

    raw_key: bytes | None
    raw_value: bytes | None
    at: tuple[str, int, int] = ("transactions", 3, 41)

    def key(self) -> bytes | None:
        return self.raw_key

    def value(self) -> bytes | None:
        return self.raw_value

    def topic(self) -> str:
        return self.at[0]

    def partition(self) -> int:
        return self.at[1]

    def offset(self) -> int:
        return self.at[2]


def size(letter: object) -> int:
    key, value, headers = letter.key, letter.value, letter.headers
    return (len(key or b"") + len(value or b"")
            + sum(len(n) + len(v) + 8 for n, v in headers) + FRAMING_BYTES)


def header(letter: object, name: str) -> str | None:
    for key, value in letter.headers:
        if key == name:
            return value.decode()
    return None


def test_a_letter_that_fits_keeps_the_original_bytes() -> None:
    source = SourceMessage(b"customer-7", b'{"bad": true}')
    letter = dead_letter(source, "invalid event: missing amount", LIMIT)
    assert (letter.key, letter.value) == (b"customer-7", b'{"bad": true}')
    assert header(letter, "error") == "invalid event: missing amount"
    assert (header(letter, "source.topic"), header(letter, "source.partition"),
            header(letter, "source.offset")) == ("transactions", "3", "41")
    assert header(letter, "truncated") is None


def test_a_value_over_the_limit_is_cut_with_its_size_and_sha256() -> None:
    value = b"v" * 3_000_000
    letter = dead_letter(SourceMessage(b"k", value), "event too large", LIMIT)
    assert size(letter) <= LIMIT
    assert value.startswith(letter.value or b"") and len(letter.value or b"") > LIMIT // 2
    assert header(letter, "original.value.bytes") == "3000000"
    assert header(letter, "original.value.sha256") == hashlib.sha256(value).hexdigest()
    assert header(letter, "truncated") == "value"
    assert letter.key == b"k"


def test_a_key_over_the_limit_is_cut_to_an_ids_length() -> None:
    key = b"K" * 2_000_000
    letter = dead_letter(SourceMessage(key, b"{}"), "bad", LIMIT)
    assert size(letter) <= LIMIT
    assert letter.key == key[:MAX_KEY_BYTES]
    assert header(letter, "original.key.bytes") == "2000000"
    assert header(letter, "original.key.sha256") == hashlib.sha256(key).hexdigest()
    assert header(letter, "truncated") == "key"
    assert letter.value == b"{}"


def test_both_over_the_limit_are_both_cut() -> None:
    letter = dead_letter(SourceMessage(b"K" * 2_000_000, b"v" * 2_000_000), "bad",
                         LIMIT)
    assert size(letter) <= LIMIT
    assert header(letter, "truncated") == "key,value"


@pytest.mark.parametrize("limit", [16_384, 100_000, 1_048_588])
def test_a_letter_fits_every_limit(limit: int) -> None:
    letter = dead_letter(SourceMessage(b"K" * 5000, b"v" * (limit * 2)), "x" * 5000,
                         limit)
    assert size(letter) <= limit


def test_a_huge_reason_is_bounded() -> None:
    letter = dead_letter(SourceMessage(None, None), "r" * 100_000, LIMIT)
    assert len(header(letter, "error") or "") <= 1024


def test_a_bare_letter_has_headers_only() -> None:
    letter = bare_dead_letter(SourceMessage(b"k", b"v" * 10), "refused")
    assert (letter.key, letter.value) == (None, None)
    assert header(letter, "original.value.bytes") == "10"
    assert header(letter, "error") == "refused"


def test_the_record_limit_is_the_smaller_of_producer_and_topic() -> None:
    assert record_limit(1_000_000, None) == 1_000_000
    assert record_limit(1_000_000, 64_000) == 64_000
    assert record_limit(500_000, 2_000_000) == 500_000


@pytest.mark.parametrize(("code", "failure"), [
    (KafkaError.MSG_SIZE_TOO_LARGE, Failure.RECORD),
    (KafkaError.INVALID_RECORD, Failure.RECORD),
    (KafkaError.INVALID_MSG, Failure.RECORD),
    (KafkaError.RECORD_LIST_TOO_LARGE, Failure.RECORD),
    (KafkaError.UNKNOWN_TOPIC_OR_PART, Failure.TOPIC),
    (KafkaError._UNKNOWN_TOPIC, Failure.TOPIC),
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, Failure.TOPIC),
    (KafkaError.CLUSTER_AUTHORIZATION_FAILED, Failure.TOPIC),
    (KafkaError._MSG_TIMED_OUT, Failure.TRANSIENT),
    (KafkaError._TRANSPORT, Failure.TRANSIENT),
    (KafkaError.NOT_LEADER_FOR_PARTITION, Failure.TRANSIENT),
    (KafkaError.REQUEST_TIMED_OUT, Failure.TRANSIENT),
])
def test_produce_errors_are_classified_once(code: int, failure: Failure) -> None:
    assert classify(KafkaError(code)) is failure


class Metadata:
    def __init__(self, topics: dict[str, object]) -> None:
        self.topics = topics


class TopicMeta:
    def __init__(self, error: object = None) -> None:
        self.error = error


def test_missing_topics_are_named() -> None:
    def list_topics(timeout: float) -> Metadata:
        return Metadata({"decisions": TopicMeta(), "broken": TopicMeta(error="x")})

    assert missing_topics(list_topics, ["decisions", "dlq", "broken"]) == ["dlq", "broken"]
