"""Everything a worker or label reader writes to Kafka, under one failure policy.

``send`` produces one output of a batch (waiting for room on a full queue, never
dropping); ``dead_letter`` produces the dead letter of one input, cut to fit the topic.
Failures, whether ``produce`` refuses a record at once or its delivery report says so
later, are classified once (``stream.output_errors``):

record     the input whose output can never be written is dead-lettered with the reason
           instead (a dead letter the topic refuses even cut to fit goes as headers
           only); the batch completes and the worker goes on.
transient  the same record is produced again.
topic      OutputTopicError: the worker ends with one line and exit code 7.

With exactly-once, a failed output dooms the open transaction instead (it is aborted
and its batches read again); an input whose output can never be written is remembered
as poison, so its second reading dead-letters it instead of failing again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from fraudstream.stream.dead_letters import DeadLetter, Headers, bare_dead_letter, dead_letter
from fraudstream.stream.delivery import DeliveryTracker, PendingBatch
from fraudstream.stream.output_errors import Failure, OutputTopicError, classify, topic_failure
from fraudstream.stream.produce import produce_or_wait

log = logging.getLogger(__name__)

Coordinates = tuple[str, int, int]  # topic, partition, offset of an input


class _DecisionId(msgspec.Struct):
    transaction_id: str


_decision_id = msgspec.json.Decoder(_DecisionId)


class Outputs:
    def __init__(self, producer: Producer, dlq_topic: str, max_record_bytes: int,
                 on_dead_letter: Callable[[], None],
                 doom: Callable[[KafkaError], None] | None = None) -> None:
        self.producer = producer
        self.dlq_topic = dlq_topic
        self.max_record_bytes = max_record_bytes
        self._on_dead_letter = on_dead_letter
        self._doom = doom  # exactly-once: abort the open transaction
        self.poison: dict[Coordinates, str] = {}  # exactly-once: inputs to dead-letter
        self.failed_topic: OutputTopicError | None = None

    def send(self, topic: str, value: bytes | None, key: bytes | None,
             pending: PendingBatch, headers: Headers | None = None) -> None:
        """Produce one output of ``pending``."""
        try:
            produce_or_wait(self.producer, topic, value, key, pending.on_delivery, headers)
        except KafkaException as exc:  # refused before it was queued: no report will come
            self._failed(pending, exc.args[0], topic, value, key, headers)

    def send_all(self, topic: str, values: list[bytes], keys: list[bytes],
                 pending: PendingBatch) -> None:
        """Produce a batch's outputs, in order: each straight to the producer, and one the
        producer refuses (a full queue, an error) the careful way (``send``)."""
        produce, on_delivery = self.producer.produce, pending.on_delivery
        for value, key in zip(values, keys, strict=True):
            try:
                produce(topic, value, key, on_delivery=on_delivery)
            except (BufferError, KafkaException):
                self.send(topic, value, key, pending)

    def dead_letter(self, source: Message, reason: str, pending: PendingBatch) -> None:
        """Produce the dead letter of ``source`` as one output of ``pending``."""
        self._send_letter(dead_letter(source, reason, self.max_record_bytes), pending)
        self._on_dead_letter()
        log.info("dead-lettered message", extra={
            "partition": source.partition(), "offset": source.offset(), "reason": reason})

    def handle_failures(self, tracker: DeliveryTracker) -> None:
        """Act on the failed deliveries reported since the last call (from the loop,
        never from inside a librdkafka callback)."""
        for pending, error, message in tracker.take_failures():
            # The stubs allow a dict; librdkafka gives the list of pairs produced, ours.
            headers = cast("Headers | None", message.headers())
            self._failed(pending, error, message.topic() or "", message.value(),
                         message.key(), headers)

    def raise_if_topic_failed(self) -> None:
        if self.failed_topic is not None:
            raise self.failed_topic

    # -- the policy ----------------------------------------------------------------------

    def _failed(self, pending: PendingBatch, error: KafkaError, topic: str,
                value: bytes | None, key: bytes | None, headers: Headers | None) -> None:
        failure = classify(error)
        if failure is Failure.TOPIC:
            if self.failed_topic is None:
                self.failed_topic = topic_failure(topic, error)
                log.error("%s", self.failed_topic)
            return
        if self._doom is not None:  # exactly-once: the transaction is aborted and re-read
            if failure is Failure.RECORD and (source := _source_of(pending, topic, value,
                                                                   headers, self.dlq_topic)):
                self.poison[_coordinates(source)] = _reason(error)
            self._doom(error)
            return
        if failure is Failure.TRANSIENT:
            log.warning("output to %s not delivered (%s): producing it again", topic,
                        error.str())
            self.send(topic, value, key, pending, headers)
            return
        source = _source_of(pending, topic, value, headers, self.dlq_topic)
        if source is None:  # cannot happen for our own outputs: never lose the count
            log.error("output to %s can never be written (%s) and its input is unknown",
                      topic, error.str())
            pending.remaining -= 1
            return
        if topic == self.dlq_topic:
            log.warning("dead letter refused (%s): sending its headers only", error.str())
            self._send_letter(bare_dead_letter(source, _header(headers, "error")), pending,
                              last_resort=True)
            return
        self._send_letter(dead_letter(source, _reason(error), self.max_record_bytes), pending)
        self._on_dead_letter()

    def _send_letter(self, letter: DeadLetter, pending: PendingBatch,
                     last_resort: bool = False) -> None:
        if not last_resort:
            self.send(self.dlq_topic, letter.value, letter.key, pending, letter.headers)
            return
        try:
            produce_or_wait(self.producer, self.dlq_topic, None, None, pending.on_delivery,
                            letter.headers)
        except KafkaException as exc:
            self.failed_topic = topic_failure(self.dlq_topic, exc.args[0])


def _reason(error: KafkaError) -> str:
    return f"output not writable: {error.str()}"


def _coordinates(message: Message) -> Coordinates:
    return message.topic() or "", message.partition() or 0, message.offset() or 0


def _header(headers: Headers | None, name: str) -> str:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return ""


def _source_of(pending: PendingBatch, topic: str, value: bytes | None,
               headers: Headers | None, dlq_topic: str) -> Message | None:
    """The input an output of ``pending`` was made from: a dead letter names its source
    in its headers, a decision its transaction id."""
    if topic == dlq_topic:
        partition, offset = _header(headers, "source.partition"), _header(headers,
                                                                          "source.offset")
        return next((source for source in pending.sources
                     if str(source.partition()) == partition
                     and str(source.offset()) == offset), None)
    try:
        wanted = _decision_id.decode(value or b"{}").transaction_id
    except msgspec.MsgspecError:
        return None
    return next((source for source, decided in zip(pending.decided, pending.decided_ids,
                                                   strict=True) if decided == wanted), None)
