"""Confirmed labels, read by a consumer group of their own.

One group for transactions and labels would let cooperative-sticky assignment balance
the two topics' partitions together: a new replica could get only label partitions and
add no capacity for transactions. Here the transactions group spreads transactions alone,
and every label is applied by exactly one worker of the labels group. Applying a label
twice counts it once (each terminal keeps the ids of the frauds it counted), so label
offsets are at-least-once even when decisions are exactly-once; a malformed label goes to
the DLQ through a plain idempotent producer, its offset stored once it is delivered."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from fraudstream.features.online import LabelBatch
from fraudstream.settings import Settings
from fraudstream.stream.delivery import DeliveryTracker
from fraudstream.stream.events import EventTimeBounds, Rejected, decode_label, decoded_id
from fraudstream.stream.kafka_config import consumer_config, producer_config
from fraudstream.stream.outputs import Outputs
from fraudstream.stream.poll import commit_offsets, consumed_at

log = logging.getLogger(__name__)


LABELS_FETCH_WAIT_MS = 100


def labels_group(settings: Settings) -> str:
    return f"{settings.group_id}-labels"


class LabelReader:
    def __init__(self, settings: Settings,
                 apply: Callable[[LabelBatch, Callable[[], None]], None],
                 on_dead_letter: Callable[[], None]) -> None:
        self.settings = settings
        self._apply = apply
        self._on_dead_letter = on_dead_letter
        self.consumer = Consumer({**consumer_config(settings, labels_group(settings)),
                                  # labels come days late: no need to ask every 5 ms,
                                  # which costs the broker more than the stream does
                                  "fetch.wait.max.ms": LABELS_FETCH_WAIT_MS})
        self._producer: Producer | None = None  # only a malformed label needs one
        self._outputs: Outputs | None = None
        self._tracker = DeliveryTracker()
        self._bounds = EventTimeBounds.of(settings.max_event_age_days,
                                          settings.max_event_lead_s)
        self.assigned: set[tuple[str, int]] = set()
        self.max_record_bytes = settings.producer_max_message_bytes  # the worker reads it

    def subscribe(self) -> None:
        self.consumer.subscribe([self.settings.topic_labels], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def poll(self) -> int:
        """Apply the labels that have arrived (never waits); returns how many."""
        messages = self.consumer.consume(self.settings.max_batch, 0)
        applied = self._take(messages) if messages else 0
        self._store_released()
        return applied

    def commit(self, asynchronous: bool) -> None:
        try:
            commit_offsets(self.consumer, asynchronous)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("label offset commit failed: %s", exc.args[0].str())

    def close(self, timeout: float) -> None:
        self._flush(timeout)
        self.commit(asynchronous=False)
        self.consumer.close()

    # -- internals ---------------------------------------------------------------------

    def _take(self, messages: list[Message]) -> int:
        offsets: dict[tuple[str, int], int] = {}
        ids: list[str] = []
        terminals: list[str] = []
        stamps: list[int] = []
        fraud: list[bool] = []
        rejected: list[tuple[Message, str]] = []
        now_ms = int(time.time() * 1000)
        for message in messages:
            if message.error() is not None:
                continue
            topic, partition, offset = consumed_at(message)
            offsets[(topic, partition)] = offset
            try:
                label, ts, _ = decode_label(message.value(), self.settings.max_event_bytes,
                                            self.settings.max_json_depth)
                self._bounds.check(ts, now_ms)
            except Rejected as exc:
                rejected.append((message, exc.reason))
                continue
            except Exception as exc:  # whatever one label does, it is only rejected
                rejected.append((message, f"cannot process: {type(exc).__name__}: {exc}"))
                continue
            ids.append(decoded_id(label.transaction_id))
            terminals.append(decoded_id(label.terminal_id))
            stamps.append(ts)
            fraud.append(label.is_fraud)
        if not offsets:
            return 0
        # The dead letters, and the labels' state work: offsets wait for both.
        pending = self._tracker.open_batch(offsets, len(rejected), messages,
                                           state=bool(ids))
        for message, reason in rejected:
            self._dead_letters().dead_letter(message, reason, pending)
        if ids:
            self._apply(LabelBatch(ids, terminals, np.asarray(stamps, dtype=np.int64),
                                   np.asarray(fraud, dtype=bool)), pending.state_written)
        return len(ids)

    def _dead_letters(self) -> Outputs:
        if self._outputs is None:
            self._producer = Producer({**producer_config(self.settings),
                                       "client.id": "fraudstream-labels-dlq"})
            self._outputs = Outputs(self._producer, self.settings.topic_dlq,
                                    self.max_record_bytes, self._on_dead_letter)
        return self._outputs

    def _store_released(self) -> None:
        if self._producer is not None and self._outputs is not None:
            self._producer.poll(0)
            self._outputs.handle_failures(self._tracker)
            self._outputs.raise_if_topic_failed()
        released = [tp for tp in self._tracker.release()
                    if (tp.topic, tp.partition) in self.assigned]
        if released:
            self.consumer.store_offsets(offsets=released)

    def _flush(self, timeout: float) -> None:
        if self._producer is not None and self._producer.flush(timeout):
            log.warning("dead-lettered labels still undelivered after %.1fs", timeout)
        self._store_released()

    def _on_assign(self, _consumer: Consumer, partitions: list[Any]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self._flush(self.settings.shutdown_timeout_s)
            self.commit(asynchronous=False)
        except Exception as exc:  # librdkafka must not swallow it; the next poll retries
            log.warning("label offsets not committed on revoke: %s", exc)
        finally:
            self._tracker.forget(partitions)
            self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _on_lost(self, _consumer: Consumer, partitions: list[Any]) -> None:
        self._tracker.forget(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}
