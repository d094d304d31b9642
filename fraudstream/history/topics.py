"""A history replayed from the transactions and labels topics, up to a cut.

Each partition is read from its first retained record to its cut: the first record whose
event time (a label's ``label_time``) is after ``until``, or the end of the partition
when the replay reaches it. Everything before the cut is the history, everything from it
on is the live stream's: committing the workers' group at the cut (``commit_cut``) is the
cut-over. Records the worker would dead-letter are skipped and counted, as the worker
skips them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from fraudstream.errors import ServiceError, TopicError
from fraudstream.features.backfill import History
from fraudstream.features.online import LabelBatch, TransactionBatch
from fraudstream.progress import Progress
from fraudstream.settings import Settings
from fraudstream.stream.events import Rejected, decode_label, decode_transaction
from fraudstream.stream.kafka_config import consumer_config
from fraudstream.stream.labels_reader import labels_group

POLL_MESSAGES = 10_000


@dataclass
class Replay:
    """What a replay read: the history, where each partition was cut, what it skipped."""

    history: History
    cuts: dict[str, dict[int, int]]  # topic -> partition -> first offset after the history
    rejected: dict[str, int] = field(default_factory=dict)  # topic -> records skipped


@dataclass
class _Partitions:
    """The reading position of every partition of one topic."""

    topic: str
    cuts: dict[int, int] = field(default_factory=dict)  # partitions done, with their cut
    open: set[int] = field(default_factory=set)


def replay_topics(settings: Settings, until_ms: int | None, timeout_s: float = 60.0,
                  progress: Progress = lambda *_: None) -> Replay:
    """Read both topics up to their cuts (``until_ms``: event time; None: their ends);
    a ServiceError when a partition makes no progress for ``timeout_s``."""
    transactions = _Transactions()
    labels = _Labels()
    cuts = {}
    rejected = {}
    for topic, reader in ((settings.topic_transactions, transactions),
                          (settings.topic_labels, labels)):
        cuts[topic] = _read(settings, topic, reader, until_ms, timeout_s, progress)
        rejected[topic] = reader.rejected
    history = History(transactions.batch(), labels.batch())
    return Replay(history, cuts, rejected)


def commit_cut(settings: Settings, replay: Replay) -> None:
    """Commit the workers' groups (transactions, labels) at the cuts: workers started
    then continue with the first record after the history."""
    for topic, group in ((settings.topic_transactions, settings.group_id),
                         (settings.topic_labels, labels_group(settings))):
        offsets = [TopicPartition(topic, p, o) for p, o in sorted(replay.cuts[topic].items())]
        consumer = Consumer(consumer_config(settings, group))
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            consumer.close()


class _Transactions:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.customers: list[str] = []
        self.terminals: list[str] = []
        self.timestamps: list[int] = []
        self.amounts: list[float] = []
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.rejected = 0

    def event_time(self, message: Message, max_bytes: int, max_depth: int) -> int | None:
        """Add the record, returning its event time; None (skipped) when rejected."""
        try:
            event, ts = decode_transaction(message.value(), max_bytes, max_depth)
        except Rejected:
            self.rejected += 1
            return None
        # arg-type: decoded ids are str (normalise_id)
        self.ids.append(event.transaction_id)  # type: ignore[arg-type]
        # arg-type: decoded ids are str (normalise_id)
        self.customers.append(event.customer_id)  # type: ignore[arg-type]
        # arg-type: decoded ids are str (normalise_id)
        self.terminals.append(event.terminal_id)  # type: ignore[arg-type]
        self.timestamps.append(ts)
        self.amounts.append(event.amount)
        partition, offset = place(message)
        self.partitions.append(partition)
        self.offsets.append(offset)
        return ts

    def drop_last(self) -> None:
        for column in (self.ids, self.customers, self.terminals, self.timestamps,
                       self.amounts, self.partitions, self.offsets):
            column.pop()

    def batch(self) -> TransactionBatch:
        return TransactionBatch(self.customers, self.terminals,
                                np.asarray(self.timestamps, dtype=np.int64),
                                np.asarray(self.amounts, dtype=np.float64),
                                np.asarray(self.partitions, dtype=np.int64),
                                np.asarray(self.offsets, dtype=np.int64), self.ids)


class _Labels:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.terminals: list[str] = []
        self.timestamps: list[int] = []
        self.fraud: list[bool] = []
        self.rejected = 0

    def event_time(self, message: Message, max_bytes: int, max_depth: int) -> int | None:
        try:
            label, ts, label_time = decode_label(message.value(), max_bytes, max_depth)
        except Rejected:
            self.rejected += 1
            return None
        # arg-type: decoded ids are str (normalise_id)
        self.ids.append(label.transaction_id)  # type: ignore[arg-type]
        # arg-type: decoded ids are str (normalise_id)
        self.terminals.append(label.terminal_id)  # type: ignore[arg-type]
        self.timestamps.append(ts)
        self.fraud.append(label.is_fraud)
        return label_time

    def drop_last(self) -> None:
        for column in (self.ids, self.terminals, self.timestamps, self.fraud):
            column.pop()

    def batch(self) -> LabelBatch:
        return LabelBatch(self.ids, self.terminals, np.asarray(self.timestamps, np.int64),
                          np.asarray(self.fraud, dtype=bool))


def _read(settings: Settings, topic: str, reader: _Transactions | _Labels,
          until_ms: int | None, timeout_s: float, progress: Progress) -> dict[int, int]:
    """Read every partition of ``topic`` to its cut into ``reader``; the cuts."""
    consumer = Consumer({**consumer_config(settings, f"fraudstream-backfill-{time.time_ns()}"),
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise TopicError(f"topic {topic} does not exist: nothing to replay")
        state = _Partitions(topic, open=set(metadata.partitions))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in state.open])
        deadline = time.monotonic() + timeout_s
        read = 0
        while state.open:
            if time.monotonic() > deadline:
                raise ServiceError(f"replaying {topic}: partitions {sorted(state.open)} made "
                                   f"no progress for {timeout_s:.0f}s")
            messages = consumer.consume(POLL_MESSAGES, 0.5)
            if messages:
                deadline = time.monotonic() + timeout_s
            for message in messages:
                read += _take(consumer, message, state, reader, until_ms, settings)
            progress(f"reading {topic}", read, None)
        return state.cuts
    finally:
        consumer.close()


def place(message: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed message (both are always set on one)."""
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return partition, offset


def _take(consumer: Consumer, message: Message, state: _Partitions,
          reader: _Transactions | _Labels, until_ms: int | None, settings: Settings) -> int:
    partition, offset = place(message)
    if partition not in state.open:
        return 0  # fetched before the partition was cut
    error = message.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            _close(consumer, state, partition, offset)
            return 0
        if error.fatal() or error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                             KafkaError.TOPIC_AUTHORIZATION_FAILED):
            raise TopicError(f"replaying {state.topic}: {error.str()}")
        return 0
    ts = reader.event_time(message, settings.max_event_bytes, settings.max_json_depth)
    if until_ms is not None and ts is not None and ts > until_ms:
        reader.drop_last()
        _close(consumer, state, partition, offset)
        return 0
    return 1


def _close(consumer: Consumer, state: _Partitions, partition: int, cut: int) -> None:
    state.cuts[partition] = cut
    state.open.discard(partition)
    consumer.pause([TopicPartition(state.topic, partition)])
