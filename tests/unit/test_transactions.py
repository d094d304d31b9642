"""stream.transactions: ids, error classes, and when a transaction commits, aborts or stops.

The producer and consumer here are recorders of the calls the transaction makes; the same
sequences run against a real broker in tests/integration/test_exactly_once.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from fraudstream.cli import build_parser
from fraudstream.errors import ConfigError
from fraudstream.settings import Settings
from fraudstream.stream.transactions import (
    MAX_ABORTS_IN_A_ROW,
    PRODUCER_LOGGER,
    Action,
    ProducerFenced,
    TransactionFailed,
    Transactions,
    classify,
    default_transactional_id,
    merge_next_offsets,
    replica_transactional_id,
    transactional_id,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Producer:
    """Records transactional calls; ``fail[name]`` lists errors to raise, one per call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.offsets: list[list[TopicPartition]] = []
        self.fail: dict[str, list[KafkaError]] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.fail.get(name)
        if errors:
            raise KafkaException(errors.pop(0))

    def init_transactions(self, _timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], _metadata: Any,
                                    _timeout: float) -> None:
        self._call("send_offsets")
        self.offsets.append(offsets)

    def commit_transaction(self, _timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, _timeout: float) -> None:
        self._call("abort")


class Consumer:
    def __init__(self, committed: dict[tuple[str, int], int]) -> None:
        self._committed = committed
        self.seeks: list[tuple[str, int, int]] = []

    def consumer_group_metadata(self) -> object:
        return object()

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self._committed]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, self._committed[tp.topic, tp.partition])
                for tp in partitions]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def make(interval_s: float = 0.1, committed: dict[tuple[str, int], int] | None = None,
         ) -> tuple[Transactions, Producer, Consumer, Clock]:
    producer, clock = Producer(), Clock()
    consumer = Consumer(committed if committed is not None else {("tx", 0): 5, ("tx", 1): -1001})
    txn = Transactions(producer, consumer, interval_s, 1.0, clock)
    return txn, producer, consumer, clock


ABORTABLE = KafkaError(KafkaError._TIMED_OUT, "x", txn_requires_abort=True)
RETRIABLE = KafkaError(KafkaError._TIMED_OUT, "x", retriable=True)
FATAL = KafkaError(KafkaError._FATAL, "x", fatal=True)
FENCED = KafkaError(KafkaError.PRODUCER_FENCED, "x", txn_requires_abort=True)


def test_errors_are_classified_fenced_first() -> None:
    assert classify(FATAL) is Action.FATAL
    assert classify(FENCED) is Action.FATAL, "an abortable fencing is still a fencing"
    assert classify(KafkaError(KafkaError._FENCED)) is Action.FATAL
    assert classify(ABORTABLE) is Action.ABORT
    assert classify(RETRIABLE) is Action.RETRY
    assert classify(KafkaError(KafkaError._STATE)) is Action.FATAL


def test_transactional_ids_are_stable_per_slot_and_distinct_between_replicas() -> None:
    assert default_transactional_id("g", "host-a", 42) == "g.host-a.42"
    assert default_transactional_id("g", "host-a", 42, 3) == "g.host-a.42.3"
    settings = Settings(group_id="workers")
    assert transactional_id(settings).startswith("workers.")
    assert transactional_id(settings.replace(transactional_id="pod-7")) == "pod-7"
    slots = {replica_transactional_id(settings, slot) for slot in range(3)}
    assert len(slots) == 3
    assert replica_transactional_id(settings, 1) == replica_transactional_id(settings, 1)
    assert replica_transactional_id(settings.replace(transactional_id="pod-7"), 2) == "pod-7.2"


def test_next_offsets_keep_the_highest_per_partition() -> None:
    into: dict[tuple[str, int], int] = {("tx", 0): 8}
    merge_next_offsets(into, {("tx", 0): 3, ("tx", 1): 0})
    merge_next_offsets(into, {("tx", 0): 9})
    assert into == {("tx", 0): 10, ("tx", 1): 1}


def test_a_transaction_opens_once_and_commits_when_old_enough() -> None:
    txn, producer, _, clock = make(interval_s=0.1)
    txn.begin_batch({("tx", 0): 10})
    assert txn.ready() is False  # fresh, younger than the interval
    txn.begin_batch({("tx", 0): 11, ("tx", 1): 3})
    clock.now += 0.15
    assert txn.ready() is True
    assert txn.commit() is True
    assert producer.calls == ["begin", "send_offsets", "commit"]
    assert {(tp.topic, tp.partition, tp.offset) for tp in producer.offsets[0]} == {
        ("tx", 0, 12), ("tx", 1, 4)}
    assert not txn.open and txn.committed == 1


def test_a_quiet_poll_commits_at_once_and_nothing_open_is_never_due() -> None:
    txn, producer, _, _ = make(interval_s=60.0)
    assert txn.ready() is False
    txn.begin_batch({("tx", 0): 0})
    assert txn.ready() is False
    assert txn.ready() is True, "no batch since the last poll: nothing to wait for"
    assert txn.commit() is True
    assert producer.calls == ["begin", "send_offsets", "commit"]


def test_zero_interval_commits_every_batch() -> None:
    txn, _, _, _ = make(interval_s=0.0)
    txn.begin_batch({("tx", 0): 0})
    assert txn.ready() is True


def test_retriable_commit_errors_are_retried() -> None:
    txn, producer, _, _ = make()
    producer.fail["commit"] = [RETRIABLE, RETRIABLE]
    txn.begin_batch({("tx", 0): 0})
    txn.ready()
    assert txn.commit() is True
    assert producer.calls.count("commit") == 3


def test_an_abortable_commit_aborts_and_rewinds_to_the_committed_offsets() -> None:
    txn, producer, consumer, _ = make()
    producer.fail["commit"] = [ABORTABLE]
    txn.begin_batch({("tx", 0): 7})
    txn.ready()
    assert txn.commit() is False
    assert producer.calls == ["begin", "send_offsets", "commit", "abort"]
    assert consumer.seeks == [("tx", 0, 5), ("tx", 1, OFFSET_BEGINNING)]
    assert (txn.committed, txn.aborted, txn.open) == (0, 1, False)
    txn.begin_batch({("tx", 0): 5})  # the next batch opens a new transaction
    assert producer.calls[-1] == "begin"


def test_a_refused_output_dooms_the_transaction() -> None:
    txn, producer, consumer, _ = make(interval_s=60.0)
    txn.begin_batch({("tx", 0): 7})
    txn.produce_failed(KafkaError(KafkaError._STATE))
    assert txn.ready() is True, "a doomed transaction is ended at once"
    assert txn.commit() is False
    assert "send_offsets" not in producer.calls and "commit" not in producer.calls
    assert consumer.seeks


def test_a_batch_that_did_not_complete_is_never_committed() -> None:
    txn, producer, _, _ = make()
    txn.begin_batch({("tx", 0): 1})
    txn.ready()
    txn.begin_batch({("tx", 0): 2})  # ... and the worker failed inside this batch
    assert txn.commit() is False
    assert producer.calls == ["begin", "abort"]


def test_a_fenced_producer_stops_for_good() -> None:
    txn, producer, _, _ = make()
    producer.fail["commit"] = [FENCED]
    txn.begin_batch({("tx", 0): 1})
    txn.ready()
    with pytest.raises(ProducerFenced):
        txn.commit()
    assert not txn.open
    with pytest.raises(TransactionFailed):
        txn.begin_batch({("tx", 0): 2})
    with pytest.raises(TransactionFailed):
        txn.commit()
    assert "abort" not in producer.calls


def test_a_fatal_error_while_producing_stops_at_once() -> None:
    txn, _, _, _ = make()
    txn.begin_batch({("tx", 0): 1})
    with pytest.raises(TransactionFailed):
        txn.produce_failed(FATAL)
    with pytest.raises(ProducerFenced):
        make()[0].produce_failed(KafkaError(KafkaError._FENCED))


def test_an_abort_that_keeps_failing_ends_the_worker() -> None:
    txn, producer, _, clock = make()
    producer.fail["commit"] = [ABORTABLE]
    producer.fail["abort"] = [RETRIABLE] * 3

    def slow_abort(_timeout: float) -> None:
        clock.now += 0.6  # two tries use up the one-second timeout
        Producer.abort_transaction(producer, _timeout)

    producer.abort_transaction = slow_abort
    txn.begin_batch({("tx", 0): 1})
    txn.ready()
    with pytest.raises(TransactionFailed):
        txn.commit()
    assert not txn.open


def test_losing_partitions_aborts_and_rewinds_only_those_kept() -> None:
    txn, producer, consumer, _ = make()
    txn.begin_batch({("tx", 0): 9, ("tx", 1): 3})
    txn.ready()
    txn.abort("partitions lost", lost={("tx", 1)})
    assert producer.calls == ["begin", "abort"]
    assert consumer.seeks == [("tx", 0, 5)]


def test_init_retries_then_gives_up_with_a_readable_error() -> None:
    txn, producer, _, _ = make()
    producer.fail["init"] = [RETRIABLE]
    txn.start()
    assert producer.calls == ["init", "init"]
    other, producer, _, _ = make()
    producer.fail["init"] = [FATAL]
    with pytest.raises(TransactionFailed, match="transaction init failed"):
        other.start()


def test_the_option_comes_from_the_environment_or_the_command_line() -> None:
    assert Settings.from_env({}).exactly_once is False
    settings = Settings.from_env({"FRAUDSTREAM_EXACTLY_ONCE": "true",
                                  "FRAUDSTREAM_TRANSACTION_INTERVAL_MS": "0",
                                  "FRAUDSTREAM_TRANSACTIONAL_ID": "pod-3"})
    assert (settings.exactly_once, settings.transaction_interval_ms,
            settings.transactional_id) == (True, 0, "pod-3")
    assert build_parser().parse_args(["worker", "--exactly-once"]).exactly_once is True
    assert build_parser().parse_args(["worker"]).exactly_once is None
    with pytest.raises(ConfigError, match="transaction_timeout_ms"):
        Settings(transaction_interval_ms=20_000, transaction_timeout_ms=10_000)


def test_a_batch_that_keeps_aborting_ends_the_worker() -> None:
    txn, _, _, _ = make()
    for _ in range(MAX_ABORTS_IN_A_ROW):
        txn.begin_batch({("tx", 0): 1})
        txn.produce_failed(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        txn.ready()
        assert txn.commit() is False
    txn.begin_batch({("tx", 0): 1})
    txn.ready()
    assert txn.commit() is True, "a commit resets the count"
    for _ in range(MAX_ABORTS_IN_A_ROW):
        txn.begin_batch({("tx", 0): 2})
        txn.abort("again")
    txn.begin_batch({("tx", 0): 2})
    with pytest.raises(TransactionFailed, match="aborted in a row"):
        txn.abort("once too often")


def test_an_abort_that_times_out_after_librdkafka_said_fenced_names_the_fencing() -> None:
    """On the embedded broker a fenced producer's abort times out instead of saying
    "fenced": the worker still names the cause from librdkafka's own report."""
    txn, producer, _, clock = make()
    txn.start()
    try:
        txn.begin_batch({("tx", 0): 9})
        producer.fail["abort"] = [RETRIABLE] * 50

        def later(_timeout: float) -> None:  # each retry of the abort takes a second
            clock.now += 1.0
            producer._call("abort")

        producer.abort_transaction = later
        logging.getLogger(PRODUCER_LOGGER).error(
            "TXNERR [producer-3]: Current transaction failed in state InTransaction: "
            "... current transaction must be aborted (PRODUCER_FENCED)")
        with pytest.raises(ProducerFenced, match="producer fenced"):
            txn.abort("a batch failed")
    finally:
        txn.close()


def test_an_abort_that_times_out_without_a_fencing_is_a_plain_failure() -> None:
    txn, producer, _, clock = make()
    txn.start()
    try:
        txn.begin_batch({("tx", 0): 9})
        producer.fail["abort"] = [RETRIABLE] * 50

        def later(_timeout: float) -> None:
            clock.now += 1.0
            producer._call("abort")

        producer.abort_transaction = later
        with pytest.raises(TransactionFailed) as failed:
            txn.abort("a batch failed")
        assert not isinstance(failed.value, ProducerFenced)
    finally:
        txn.close()
