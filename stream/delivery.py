"""Offsets become committable only when every output of their batch is delivered.

Each batch of input messages is one ``PendingBatch``: its delivery callback is shared by
all the batch's outputs (no closure per message). Batches complete roughly in order;
offsets are released strictly in order, so only contiguous finished work is committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, TopicPartition

Partition = tuple[str, int]


class DeliveryFailed(RuntimeError):
    """An output could not be delivered: its batch's offsets must never be committed."""


class PendingBatch:
    __slots__ = ("error", "offsets", "remaining")

    def __init__(self, offsets: dict[Partition, int], expected: int) -> None:
        self.offsets = offsets  # highest input offset per partition in the batch
        self.remaining = expected
        self.error: KafkaError | None = None

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= 1

    @property
    def done(self) -> bool:
        return self.remaining <= 0


class DeliveryTracker:
    def __init__(self) -> None:
        self._pending: deque[PendingBatch] = deque()

    def open_batch(self, offsets: dict[Partition, int], expected: int) -> PendingBatch:
        batch = PendingBatch(offsets, expected)
        self._pending.append(batch)
        return batch

    @property
    def in_flight(self) -> int:
        return sum(b.remaining for b in self._pending)

    @property
    def pending_batches(self) -> int:
        """Batches with outputs not yet all delivered (cheap: no per-output count)."""
        return len(self._pending)

    def release(self) -> list[TopicPartition]:
        """Offsets (next to read) of the finished batches at the head of the queue.

        A batch with a failed delivery stays at the head for good: nothing behind it is
        ever released. ``raise_if_failed`` reports it."""
        ready: dict[Partition, int] = {}
        while self._pending and self._pending[0].done and self._pending[0].error is None:
            batch = self._pending.popleft()
            for partition, offset in batch.offsets.items():
                if offset >= ready.get(partition, -1):
                    ready[partition] = offset
        return [TopicPartition(t, p, o + 1) for (t, p), o in ready.items()]

    def raise_if_failed(self) -> None:
        if self._pending and self._pending[0].done and self._pending[0].error is not None:
            error = self._pending[0].error
            raise DeliveryFailed(f"an output was not delivered: {error.str()}")

    def first_error(self) -> KafkaError | None:
        """The first failed delivery of any open batch (served reports only)."""
        return next((b.error for b in self._pending if b.error is not None), None)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions lost to another consumer: never store offsets for them again."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for batch in self._pending:
            for key in gone & batch.offsets.keys():
                del batch.offsets[key]
