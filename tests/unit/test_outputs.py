"""stream.outputs.Outputs: one failure policy for every output, on a fake producer (the
real broker paths are in tests/e2e/test_hostile_inputs.py and test_output_topic_errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from fraudstream.stream.delivery import DeliveryTracker
from fraudstream.stream.output_errors import OutputTopicError
from fraudstream.stream.outputs import Outputs

DLQ = "tx.dlq"


@dataclass
class Sent:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]] | None
    on_delivery: Callable[[Any, Any], None]


class Delivered:
    """The message a delivery report hands back."""

    def __init__(self, sent: Sent) -> None:
        self._sent = sent

    def topic(self) -> str:
        return self._sent.topic

    def value(self) -> bytes | None:
        return self._sent.value

    def key(self) -> bytes | None:
        return self._sent.key

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._sent.headers


@dataclass
class FakeProducer:
    sent: list[Sent] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)  # topic -> error code, at once

    def produce(self, topic: str, value: bytes | None, key: bytes | None, *,
                on_delivery: Callable[[Any, Any], None],
                headers: list[tuple[str, bytes]] | None = None) -> None:
        if topic in self.refuse:
            raise KafkaException(KafkaError(self.refuse[topic]))
        self.sent.append(Sent(topic, value, key, headers, on_delivery))

    def poll(self, _timeout: float) -> int:
        return 0

    def report(self, index: int, code: int | None = None) -> None:
        sent = self.sent[index]
        sent.on_delivery(KafkaError(code) if code is not None else None, Delivered(sent))


@dataclass
class Source:
    raw_value: bytes
    at: tuple[int, int]
    raw_key: bytes | None = b"k"

    def topic(self) -> str:
        return "tx"

    def partition(self) -> int:
        return self.at[0]

    def offset(self) -> int:
        return self.at[1]

    def key(self) -> bytes | None:
        return self.raw_key

    def value(self) -> bytes:
        return self.raw_value


def setup(doom: Callable[[KafkaError], None] | None = None,
          ) -> tuple[FakeProducer, Outputs, DeliveryTracker, list[int]]:
    producer = FakeProducer()
    dead: list[int] = []
    outputs = Outputs(producer, DLQ, 1_000_000, lambda: dead.append(1), doom=doom)
    return producer, outputs, DeliveryTracker(), dead


def decided_batch(tracker: DeliveryTracker, sources: list[Source]):
    pending = tracker.open_batch({("tx", 0): 9}, len(sources), sources)
    pending.decided = sources
    pending.decided_ids = [f"t{i}" for i in range(len(sources))]
    return pending


def test_a_decision_that_can_never_be_written_dead_letters_its_input() -> None:
    producer, outputs, tracker, dead = setup()
    sources = [Source(b'{"transaction_id":"t0"}', (0, 8)), Source(b'{"x":1}', (0, 9))]
    pending = decided_batch(tracker, sources)
    for i in range(2):
        outputs.send("decisions", f'{{"transaction_id":"t{i}"}}'.encode(), b"c", pending)
    producer.report(0)
    producer.report(1, KafkaError.MSG_SIZE_TOO_LARGE)
    outputs.handle_failures(tracker)
    letter = producer.sent[-1]
    assert letter.topic == DLQ and letter.value == b'{"x":1}'
    assert dict(letter.headers or [])["source.offset"] == b"9"
    assert dict(letter.headers or [])["error"] == \
        b"output not writable: Broker: Message size too large"
    assert dead == [1]
    assert not pending.done
    producer.report(len(producer.sent) - 1)
    assert pending.done and tracker.release()


def test_a_transient_failure_produces_the_same_record_again() -> None:
    producer, outputs, tracker, dead = setup()
    pending = decided_batch(tracker, [Source(b"{}", (0, 1))])
    outputs.send("decisions", b'{"transaction_id":"t0"}', b"c", pending)
    producer.report(0, KafkaError._MSG_TIMED_OUT)
    outputs.handle_failures(tracker)
    assert [(s.topic, s.value) for s in producer.sent] == [
        ("decisions", b'{"transaction_id":"t0"}')] * 2
    producer.report(1)
    assert pending.done and not dead


def test_a_topic_failure_is_kept_and_raised_once_from_the_loop() -> None:
    producer, outputs, tracker, _ = setup()
    pending = decided_batch(tracker, [Source(b"{}", (0, 1))])
    outputs.send("decisions", b'{"transaction_id":"t0"}', b"c", pending)
    producer.report(0, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    outputs.handle_failures(tracker)
    with pytest.raises(OutputTopicError, match="cannot write to topic decisions"):
        outputs.raise_if_topic_failed()
    assert OutputTopicError.exit_code == 7
    assert len(producer.sent) == 1, "a topic-level failure is not retried"


def test_a_record_refused_at_once_is_handled_like_a_failed_report() -> None:
    producer, outputs, tracker, dead = setup()
    producer.refuse["decisions"] = KafkaError.MSG_SIZE_TOO_LARGE
    sources = [Source(b"{}", (0, 4))]
    pending = decided_batch(tracker, sources)
    outputs.send("decisions", b'{"transaction_id":"t0"}', b"c", pending)
    assert [s.topic for s in producer.sent] == [DLQ] and dead == [1]


def test_a_refused_dead_letter_goes_as_headers_only() -> None:
    producer, outputs, tracker, _ = setup()
    source = Source(b"v" * 100, (1, 7))
    pending = tracker.open_batch({("tx", 1): 7}, 1, [source])
    outputs.dead_letter(source, "bad event", pending)
    producer.report(0, KafkaError.INVALID_RECORD)
    outputs.handle_failures(tracker)
    bare = producer.sent[-1]
    assert (bare.topic, bare.value, bare.key) == (DLQ, None, None)
    assert dict(bare.headers or [])["original.value.bytes"] == b"100"
    producer.report(1)
    assert pending.done


def test_with_exactly_once_a_failure_dooms_the_transaction_and_marks_poison() -> None:
    doomed: list[KafkaError] = []
    producer, outputs, tracker, _ = setup(doom=doomed.append)
    sources = [Source(b"{}", (0, 5))]
    pending = decided_batch(tracker, sources)
    outputs.send("decisions", b'{"transaction_id":"t0"}', b"c", pending)
    producer.report(0, KafkaError.MSG_SIZE_TOO_LARGE)
    outputs.handle_failures(tracker)
    assert len(doomed) == 1
    assert outputs.poison == {("tx", 0, 5): "output not writable: Broker: Message size too large"}
    assert len(producer.sent) == 1, "nothing is produced into a doomed transaction"
