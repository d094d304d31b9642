"""Exactly-once delivery (``--exactly-once``): one transactional producer per worker process.

A transaction holds the outputs (decisions, dead letters) of the batches polled within
``transaction_interval_ms`` and the input offsets that follow them, sent with
``send_offsets_to_transaction`` and the consumer's group metadata: a read_committed reader
sees a batch's outputs if and only if its input offsets are committed. An abortable error
aborts the transaction and rewinds the consumer to the committed offsets, so its batches
are processed again (feature state is not counted twice: its writes carry high-water
offsets); a sixth abort in a row ends the worker. A fenced producer or a fatal error ends
the worker too: a zombie never goes on producing.

The transactional.id is ``<group>.<host>.<pid>``; under ``--processes`` each replica gets
``<group>.<host>.<supervisor pid>.<slot>``, kept across restarts of that slot. Zombie
fencing after a rebalance does not need the id: the group metadata sent with the offsets
fences a member that lost its partitions (KIP-447), so ids need not follow partitions. The
id decides who ends a killed worker's open transaction: a restart with the same id aborts
it in ``init_transactions``; under a new id the broker waits ``transaction.timeout.ms``
(Tansu never aborts it), and read_committed readers wait behind it all that time. Live
workers never share an id: host and pid tell them apart (in a container, the host name is
the pod's and the pid is stable across container restarts).
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from fraudstream.errors import FraudstreamError
from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import librdkafka_logger_name

log = logging.getLogger(__name__)
PRODUCER_LOGGER = librdkafka_logger_name("producer")

Partition = tuple[str, int]
# Aborts in a row, without a commit between them, that end the worker: the same batch
# failing again and again is a fault for its supervisor to see, not bad luck.
MAX_ABORTS_IN_A_ROW = 5

# librdkafka reports some brokers' fencing as abortable, not fatal: a fenced producer
# that aborted and carried on would keep writing records nobody can commit.
FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                          KafkaError.INVALID_PRODUCER_EPOCH,
                          KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED})


class TransactionFailed(FraudstreamError):
    """The producer cannot get back to a clean transaction state: only a restart can."""

    exit_code = 5


class ProducerFenced(TransactionFailed):
    """Another producer took this worker's transactional.id: this one must stop."""


class FencingSeen(logging.Filter):
    """Remembers that librdkafka logged a producer of this process fenced. A fenced
    producer's transaction fails with an abortable error first, and on some brokers (the
    embedded one) the abort that follows times out instead of saying "fenced": this is how
    the worker still names the cause when it stops."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "PRODUCER_FENCED" in record.getMessage():
            self.seen = True
        return True


class Action(enum.Enum):
    FATAL = "fatal"
    ABORT = "abort"
    RETRY = "retry"


def classify(error: KafkaError) -> Action:
    if error.fatal() or error.code() in FENCED_CODES:
        return Action.FATAL
    if error.txn_requires_abort():
        return Action.ABORT
    if error.retriable():
        return Action.RETRY
    return Action.FATAL


def default_transactional_id(group_id: str, host: str, pid: int, slot: int | None = None,
                             ) -> str:
    base = f"{group_id}.{host}.{pid}"
    return base if slot is None else f"{base}.{slot}"


def transactional_id(settings: Settings) -> str:
    """This process's id: the configured one, else from group, host and pid."""
    return settings.transactional_id or default_transactional_id(
        settings.group_id, socket.gethostname(), os.getpid())


def replica_transactional_id(settings: Settings, slot: int) -> str:
    """The id of replica ``slot`` of a ``--processes`` pool run by this process: the same
    for every restart of the slot, distinct from every other replica and pool."""
    if settings.transactional_id:
        return f"{settings.transactional_id}.{slot}"
    return default_transactional_id(settings.group_id, socket.gethostname(), os.getpid(), slot)


def merge_next_offsets(into: dict[Partition, int], last_read: Mapping[Partition, int]) -> None:
    """Fold a batch's last offsets read into the next offsets to commit."""
    for partition, offset in last_read.items():
        if offset + 1 > into.get(partition, -1):
            into[partition] = offset + 1


class Transactions:
    """The transaction of one worker: opened by the first batch after the last commit,
    committed once it is ``interval_s`` old or the stream goes quiet."""

    def __init__(self, producer: Producer, consumer: Consumer, interval_s: float,
                 timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._producer = producer
        self._consumer = consumer
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._open = False
        self._opened_at = 0.0
        self._offsets: dict[Partition, int] = {}  # next offsets of completed batches
        self._batch: Mapping[Partition, int] | None = None  # last offsets of the batch in hand
        self._fresh = False
        self._doomed: KafkaError | None = None
        self._dead = False
        self.committed = 0
        self.aborted = 0
        self._aborts_in_a_row = 0
        self.commit_seconds = 0.0
        self._fencing = FencingSeen()

    @property
    def open(self) -> bool:
        """A transaction is open and can still be committed or aborted."""
        return self._open and not self._dead

    def start(self) -> None:
        """``init_transactions``: fences an earlier producer with the same id and ends
        its open transaction."""
        logging.getLogger(PRODUCER_LOGGER).addFilter(self._fencing)
        self._retrying("init", self._producer.init_transactions)

    def close(self) -> None:
        """Stop watching the producer's log (the producer itself is the worker's)."""
        logging.getLogger(PRODUCER_LOGGER).removeFilter(self._fencing)

    # -- the loop ----------------------------------------------------------------------

    def begin_batch(self, last_read: Mapping[Partition, int]) -> None:
        """A batch is about to produce its outputs: they go in the open transaction."""
        self._guard()
        if not self._open:
            try:
                self._producer.begin_transaction()
            except KafkaException as exc:
                self._dead = True
                raise _failure("begin", exc.args[0]) from None
            self._open, self._opened_at = True, self._clock()
        self._batch = last_read
        self._fresh = True

    def produce_failed(self, error: KafkaError) -> None:
        """An output of the open transaction could not be produced: the transaction can
        only be aborted. A fenced or fatal producer stops here."""
        if error.fatal() or error.code() in FENCED_CODES:
            self._dead = True
            raise _failure("produce", error)
        if self._doomed is None:
            log.warning("output not produced (%s): the transaction will be aborted",
                        error.str())
            self._doomed = error

    def ready(self) -> bool:
        """Called after every poll: the batch in hand is complete. True when the open
        transaction should be committed now: old enough, or nothing came in this time."""
        if self._batch is not None:
            merge_next_offsets(self._offsets, self._batch)
            self._batch = None
        if not self._open:
            return False
        fresh, self._fresh = self._fresh, False
        return self._doomed is not None or not fresh or (
            self._clock() - self._opened_at >= self._interval_s)

    def commit(self) -> bool:
        """Commit the outputs and offsets of the completed batches. False when the
        transaction had to be aborted instead (the consumer is then rewound to the
        committed offsets); raises ``TransactionFailed`` when neither is possible. On
        revoke and shutdown too: a batch that did not complete is aborted."""
        self._guard()
        if not self._open:
            return True
        if self._batch is not None:  # a batch was interrupted: its offsets were not earned
            self.abort("a batch did not complete")
            return False
        if self._doomed is not None:
            self.abort(f"an output was not produced: {self._doomed.str()}")
            return False
        started = self._clock()
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._offsets.items()]
        try:
            if offsets:
                self._retrying("send offsets", lambda timeout: (
                    self._producer.send_offsets_to_transaction(
                        offsets, self._consumer.consumer_group_metadata(), timeout)))
            self._retrying("commit", self._producer.commit_transaction)
        except _Abortable as exc:
            self.abort(exc.error.str())
            return False
        self._closed()
        self.committed += 1
        self._aborts_in_a_row = 0
        self.commit_seconds += self._clock() - started
        return True

    def abort(self, reason: str, rewind: bool = True,
              lost: Collection[Partition] = ()) -> None:
        """Abort the open transaction; with ``rewind``, seek the consumer's other
        partitions back to their committed offsets so the batches are read again."""
        if not self._open or self._dead:
            return
        log.warning("aborting the transaction: %s", reason)
        try:
            self._retrying("abort", self._producer.abort_transaction)
        except _Abortable as exc:  # an abort that itself needs an abort: no way back
            self._dead = True
            raise self._named(TransactionFailed(
                f"transaction abort failed: {exc.error.str()}")) from None
        except ProducerFenced:
            raise
        except TransactionFailed as exc:
            raise self._named(exc) from None
        self._closed()
        self.aborted += 1
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row > MAX_ABORTS_IN_A_ROW:
            self._dead = True
            raise TransactionFailed(f"{self._aborts_in_a_row} transactions aborted in a row "
                                    f"(last: {reason})")
        if rewind:
            self._rewind(lost)

    # -- internals ---------------------------------------------------------------------

    def _named(self, failure: TransactionFailed) -> TransactionFailed:
        """``failure``, or that the producer was fenced when librdkafka said so."""
        if self._fencing.seen:
            return ProducerFenced(f"producer fenced ({failure}): a newer worker holds this "
                                  "transactional.id")
        return failure

    def _closed(self) -> None:
        self._open = False
        self._offsets = {}
        self._batch = None
        self._doomed = None
        self._fresh = False

    def _guard(self) -> None:
        if self._dead:
            raise TransactionFailed("the transactional producer failed earlier")

    def _retrying(self, what: str, call: Callable[[float], Any]) -> None:
        """``call(timeout)`` until it succeeds, retrying retriable errors within the
        timeout. Raises ``_Abortable`` or ``TransactionFailed`` (the producer is then
        dead: nothing transactional is tried again)."""
        deadline = self._clock() + self._timeout_s
        while True:
            remaining = deadline - self._clock()
            try:
                call(max(0.1, remaining))
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
            action = classify(error)
            if action is Action.RETRY and self._clock() < deadline:
                log.info("transaction %s: %s; retrying", what, error.str())
                continue
            if action is Action.ABORT:
                raise _Abortable(error)
            self._dead = True
            raise _failure(what, error)

    def _rewind(self, lost: Collection[Partition]) -> None:
        assigned = [tp for tp in self._consumer.assignment()
                    if (tp.topic, tp.partition) not in lost]
        if not assigned:
            return
        for tp in self._consumer.committed(assigned, timeout=self._timeout_s):
            target = TopicPartition(tp.topic, tp.partition,
                                    tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            try:
                self._consumer.seek(target)
            except KafkaException as exc:  # not fetching yet: it starts from the commit
                log.info("no rewind of %s[%d]: %s", tp.topic, tp.partition,
                         exc.args[0].str())
        log.info("rewound %d partitions to their committed offsets", len(assigned))


class _Abortable(Exception):
    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.str())
        self.error = error


def _failure(what: str, error: KafkaError) -> TransactionFailed:
    if error.code() in FENCED_CODES:
        return ProducerFenced(f"producer fenced during transaction {what}: {error.str()} "
                              "(a newer worker holds this transactional.id)")
    return TransactionFailed(f"transaction {what} failed: {error.str()}")
