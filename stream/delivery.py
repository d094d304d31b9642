"""Offsets become committable only when every output of their batch is delivered.

Each batch of input messages is one ``PendingBatch``: its delivery callback is shared by
all the batch's outputs (no closure per message). Batches complete roughly in order;
offsets are released strictly in order, so only contiguous finished work is committed.

A failed delivery does not finish its output: the callback only queues it on the
tracker's ``failures`` (librdkafka calls it inside poll and flush, where producing again
is not safe) and the batch stays open until the loop has handled it
(``stream.outputs.Outputs.handle_failures``: produced again, or its input dead-lettered).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, TopicPartition

Partition = tuple[str, int]
Failed = tuple["PendingBatch", KafkaError, Message]


class PendingBatch:
    __slots__ = ("decided", "decided_ids", "failures", "offsets", "remaining", "sources")

    def __init__(self, offsets: dict[Partition, int], expected: int,
                 failures: list[Failed] | None = None,
                 sources: list[Message] | None = None) -> None:
        self.offsets = offsets  # highest input offset per partition in the batch
        self.remaining = expected
        self.failures: list[Failed] = failures if failures is not None else []
        # The inputs, to dead-letter one whose output can never be written: every
        # message of the batch, and the decided ones beside their transaction ids.
        self.sources: list[Message] = sources or []
        self.decided: list[Message] = []
        self.decided_ids: list[str] = []

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.remaining -= 1
        else:
            self.failures.append((self, error, message))

    @property
    def done(self) -> bool:
        return self.remaining <= 0


class DeliveryTracker:
    def __init__(self) -> None:
        self._pending: deque[PendingBatch] = deque()
        self.failures: list[Failed] = []  # failed deliveries the loop has yet to handle

    def open_batch(self, offsets: dict[Partition, int], expected: int,
                   sources: list[Message] | None = None) -> PendingBatch:
        batch = PendingBatch(offsets, expected, self.failures, sources)
        self._pending.append(batch)
        return batch

    @property
    def in_flight(self) -> int:
        return sum(b.remaining for b in self._pending)

    @property
    def pending_batches(self) -> int:
        """Batches with outputs not yet all delivered (cheap: no per-output count)."""
        return len(self._pending)

    def take_failures(self) -> list[Failed]:
        failures = self.failures[:]
        self.failures.clear()  # the same list object: open batches append to it
        return failures

    def release(self) -> list[TopicPartition]:
        """Offsets (next to read) of the finished batches at the head of the queue."""
        ready: dict[Partition, int] = {}
        while self._pending and self._pending[0].done:
            batch = self._pending.popleft()
            for partition, offset in batch.offsets.items():
                if offset >= ready.get(partition, -1):
                    ready[partition] = offset
        return [TopicPartition(t, p, o + 1) for (t, p), o in ready.items()]

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions lost to another consumer: never store offsets for them again."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for batch in self._pending:
            for key in gone & batch.offsets.keys():
                del batch.offsets[key]
