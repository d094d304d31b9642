"""A worker's offsets: which input offsets are safe to commit, and committing them.

At-least-once: a batch's offsets are stored only once every output of the batch is
delivered (``DeliveryTracker``), committed every ``commit_interval_s`` and synchronously
on revoke and shutdown; never on lost. Exactly-once: the outputs and the input offsets
of the batches polled within a transaction interval commit together
(``stream.transactions``); an abort rewinds the consumer. Either way failed outputs are
handled first (``stream.outputs``), and consumption pauses while too many batches wait
for delivery reports.

``release`` runs after every poll, in this order:
1. act on failed deliveries (produced again, dead-lettered, or a topic failure);
2. an output topic refusing every record ends the worker (exit 7);
3. exactly-once: commit the transaction when it is due; at-least-once: store the
   offsets of the batches finished at the head of the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from fraudstream.stream.delivery import DeliveryTracker, PendingBatch
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.stream.outputs import Outputs
from fraudstream.stream.poll import commit_offsets
from fraudstream.stream.transactions import Transactions

log = logging.getLogger(__name__)

Partition = tuple[str, int]
PAUSE_AT_PENDING_BATCHES = 200
RESUME_AT_PENDING_BATCHES = 20
PAUSE_AT_QUEUE_FILL = 0.8  # of the producer's queue: produce would soon wait
RESUME_AT_QUEUE_FILL = 0.25
_NO_OFFSET = KafkaError._NO_OFFSET


class Checkpoint:
    def __init__(self, consumer: Consumer, producer: Producer, outputs: Outputs,
                 transactions: Transactions | None, metrics: WorkerMetrics,
                 on_topic_failure: Callable[[], None], producer_queue_messages: int) -> None:
        self.consumer = consumer
        self.producer = producer
        self.outputs = outputs
        self.transactions = transactions
        self.metrics = metrics
        self.tracker = DeliveryTracker()
        self.assigned: set[Partition] = set()
        self.paused = False
        self._queue_pause_at = max(1, int(producer_queue_messages * PAUSE_AT_QUEUE_FILL))
        self._queue_resume_at = int(producer_queue_messages * RESUME_AT_QUEUE_FILL)
        self._on_topic_failure = on_topic_failure  # readiness says why before the end

    def open_batch(self, offsets: dict[Partition, int], expected: int,
                   messages: list[Message], state: bool) -> PendingBatch:
        """A polled batch about to produce ``expected`` outputs (and, ``state``, count
        events into the feature state)."""
        if self.transactions is not None:
            self.transactions.begin_batch(offsets)
        return self.tracker.open_batch(offsets, expected, messages, state)

    def release(self) -> None:
        """After each poll (see the module's steps)."""
        self.outputs.handle_failures(self.tracker)  # 1
        if self.outputs.failed_topic is not None:  # 2
            self._on_topic_failure()
            self.outputs.raise_if_topic_failed()
        if self.transactions is not None:  # 3
            if self.transactions.ready():
                self._end_transaction()
            return
        released = [tp for tp in self.tracker.release()
                    if (tp.topic, tp.partition) in self.assigned]
        if released:
            self.consumer.store_offsets(offsets=released)

    def commit(self, asynchronous: bool) -> None:
        if self.transactions is not None:  # offsets are committed in the transaction only
            return
        try:
            commit_offsets(self.consumer, asynchronous)
        except KafkaException as exc:
            if exc.args[0].code() != _NO_OFFSET:
                log.warning("offset commit failed: %s", exc.args[0].str())

    def drain(self, timeout: float) -> None:
        """Wait for every produced output's delivery report, then store their offsets
        (with exactly-once: commit the open transaction)."""
        if self.transactions is not None:
            self._end_transaction()
            return
        remaining = self.producer.flush(timeout)
        if remaining:
            log.warning("%d outputs still undelivered after %.1fs", remaining, timeout)
        self.release()

    def hold_back(self, state_backlog_events: int, state_backlog_max: int) -> None:
        """Pause consumption while too many batches wait for delivery reports or the
        producer's queue is nearly full (the output topic unwritable or slow), or too
        many events wait to be
        counted into the feature state (the store down), and resume once most are in.
        Polling goes on meanwhile: the group membership stays alive and nothing is read
        that could not be answered."""
        waiting = self.tracker.pending_batches
        if waiting > PAUSE_AT_PENDING_BATCHES:  # only then is the exact count worth it
            waiting = self.tracker.undelivered_batches()
        queued = len(self.producer)
        if not self.paused and (waiting > PAUSE_AT_PENDING_BATCHES
                                or queued >= self._queue_pause_at
                                or state_backlog_events > state_backlog_max):
            self.paused = True
            self.consumer.pause(self.consumer.assignment())
            self.metrics.consumption_paused.set(1)
            log.warning("%d batches (%d outputs) wait for delivery reports, %d events for "
                        "the feature store: consumption paused", waiting, queued,
                        state_backlog_events)
        elif self.paused and waiting <= RESUME_AT_PENDING_BATCHES \
                and queued <= self._queue_resume_at \
                and state_backlog_events <= state_backlog_max // 2:
            self.paused = False
            self.consumer.resume(self.consumer.assignment())
            self.metrics.consumption_paused.set(0)
            log.info("deliveries and state writes caught up: consumption resumed")

    # -- rebalances ----------------------------------------------------------------------

    def assigned_now(self, partitions: list[Any]) -> None:
        if self.paused:  # newly assigned partitions start fetching otherwise
            self.consumer.pause(partitions)
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self.metrics.assigned_partitions.set(len(self.assigned))

    def revoked(self, partitions: list[Any], timeout: float) -> None:
        """Commit what is delivered before the partitions move (raises: the worker's
        rebalance callback keeps it for the loop)."""
        try:
            self.drain(timeout)
            self.commit(asynchronous=False)
        finally:
            self._forget(partitions)

    def lost(self, partitions: list[Any]) -> None:
        """Never committed: their new owner reads them again from the last commit."""
        try:
            if self.transactions is not None and self.transactions.open:
                self.transactions.abort("partitions lost", lost={
                    (tp.topic, tp.partition) for tp in partitions})
                self.metrics.transactions.labels("aborted").inc()
                self.tracker = DeliveryTracker()
        finally:
            self._forget(partitions)

    def _forget(self, partitions: list[Any]) -> None:
        self.tracker.forget(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}
        self.metrics.assigned_partitions.set(len(self.assigned))

    def _end_transaction(self) -> None:
        transactions = self.transactions
        if transactions is None or not transactions.open:
            return
        self.producer.poll(0)  # a failed delivery says why (fenced?) before commit tries
        self.outputs.handle_failures(self.tracker)
        started = time.perf_counter()
        committed = transactions.commit()
        if committed:
            self.metrics.transaction_seconds.observe(time.perf_counter() - started)
        self.metrics.transactions.labels("committed" if committed else "aborted").inc()
        self.tracker = DeliveryTracker()  # the transaction answered for every output
