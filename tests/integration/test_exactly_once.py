"""Exactly-once against a real broker and Redis: transactions, rewinds and fencing.

Which checks the broker can support is probed first (tests/transactions_probe.py); a check
the broker cannot support is narrowed and said so, never passed silently."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import consumer_config, transactional_producer_config
from fraudstream.stream.transactions import ProducerFenced, TransactionFailed, Transactions
from tests.gaps import broker_cannot, narrowed
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.population import recent
from tests.transactions_probe import (
    ABORTED_VISIBLE,
    SAME_ID_NOT_FENCED,
    STALE_MEMBER_ACCEPTED,
    TransactionSupport,
    probe_transactions,
)
from tests.waiting import wait_for


@pytest.fixture
def support(kafka_bootstrap: str) -> TransactionSupport:
    return probe_transactions(kafka_bootstrap)


def eos(settings: Settings, **changes: object) -> Settings:
    return settings.replace(exactly_once=True,
                            transactional_id=f"{settings.group_id}-{uuid.uuid4().hex[:6]}",
                            **changes)


def next_offsets(settings: Settings, topic: str, expect: int) -> dict[int, int]:
    records = read_topic(settings, topic, expect=expect, settle=0.5)
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return ends


def committed(settings: Settings, topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings))
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def test_each_event_is_decided_once_and_offsets_commit_in_the_transactions(
        settings: Settings) -> None:
    settings = eos(settings, transaction_interval_ms=0)  # one transaction per batch
    make_topics(settings, partitions=4)
    frame = simulate(recent(2))
    sent = produce_frame(settings, frame)
    with running_worker(settings) as worker:
        records = read_topic(settings, settings.topic_decisions, expect=sent)
        transactions = worker.transactions
    assert transactions is not None
    ids = Counter(decision_decoder.decode(r.value).transaction_id for r in records)
    assert set(ids) == {str(i) for i in frame["transaction_id"]}
    assert max(ids.values()) == 1, "a decision was read twice (read_committed)"
    assert transactions.committed >= 1 and transactions.aborted == 0
    ends = next_offsets(settings, settings.topic_transactions, expect=sent)
    assert committed(settings, settings.topic_transactions, sorted(ends)) == ends
    print(f"[exactly-once drain] events={sent} transactions={transactions.committed} "
          f"commit_ms_mean={1000 * transactions.commit_seconds / transactions.committed:.2f}")


def _consume(consumer: Consumer, count: int, timeout: float = 30) -> list[Message]:
    got: list[Message] = []

    def enough() -> bool:
        got.extend(m for m in consumer.consume(count - len(got), 0.2) if m.error() is None)
        return len(got) >= count

    wait_for(enough, lambda: f"{count} messages (consumed {len(got)})", timeout, 0)
    assert len(got) == count, f"consumed {len(got)} of {count}"
    return got


def _assigned(consumer: Consumer, timeout: float = 30) -> None:
    def assigned() -> bool:
        consumer.poll(0.1)
        return bool(consumer.assignment())

    wait_for(assigned, "a partition assigned", timeout, 0)


def _relay(producer: Producer, transactions: Transactions, messages: list[Message],
           topic: str) -> None:
    """What a worker does with a batch: its outputs in the open transaction."""
    last = {(m.topic(), m.partition()): m.offset() for m in messages}
    transactions.begin_batch(last)
    for m in messages:
        producer.produce(topic, m.value(), m.key())


def test_an_aborted_transaction_is_read_again_from_the_last_commit(
        settings: Settings, support: TransactionSupport) -> None:
    settings = eos(settings, transaction_interval_ms=60_000, transaction_timeout_ms=90_000)
    make_topics(settings, partitions=1)
    source, sink = settings.topic_transactions, settings.topic_decisions
    produce_raw(settings, source, [(b"k", f"m{i}".encode()) for i in range(10)])
    consumer = Consumer(consumer_config(settings))
    producer = Producer(transactional_producer_config(settings, settings.transactional_id or ""))
    transactions = Transactions(producer, consumer, 60.0, 10.0)
    try:
        transactions.start()
        consumer.subscribe([source])
        first = _consume(consumer, 5)
        _relay(producer, transactions, first, sink)
        assert transactions.ready() is False  # fresh and young: stays open
        assert transactions.commit() is True
        second = _consume(consumer, 5)
        _relay(producer, transactions, second, sink)
        transactions.ready()
        transactions.produce_failed(KafkaError(KafkaError._STATE))  # an output was refused
        assert transactions.commit() is False, "a doomed transaction must abort"
        again = _consume(consumer, 5)
        assert [m.offset() for m in again] == [m.offset() for m in second]
        _relay(producer, transactions, again, sink)
        assert transactions.ready() is False
        assert transactions.ready() is True  # a poll without a batch: the stream is quiet
        assert transactions.commit() is True
        assert consumer.committed([TopicPartition(source, 0)], 20)[0].offset == 10
    finally:
        consumer.close()
    assert (transactions.committed, transactions.aborted) == (2, 1)
    values = Counter(r.value for r in read_topic(settings, sink, expect=10, settle=1.0))
    assert set(values) == {f"m{i}".encode() for i in range(10)}
    if support.hides_aborted:
        assert max(values.values()) == 1
    else:
        narrowed("an aborted batch is read once downstream", ABORTED_VISIBLE,
                 "only the aborted batch repeats")
        assert {v for v, n in values.items() if n > 1} <= {m.value() for m in second}


def test_a_producer_whose_transactional_id_is_taken_stops(
        settings: Settings, support: TransactionSupport) -> None:
    if not support.fences_same_id:
        broker_cannot(SAME_ID_NOT_FENCED)
    settings = eos(settings)
    make_topics(settings, partitions=1)
    consumer = Consumer(consumer_config(settings))
    config = transactional_producer_config(settings, settings.transactional_id or "")
    zombie = Transactions(Producer(config), consumer, 0.0, 5.0)
    zombie.start()
    Transactions(Producer(config), consumer, 0.0, 5.0).start()  # a newer worker, same id
    try:
        zombie.begin_batch({(settings.topic_transactions, 0): 0})
        zombie._producer.produce(settings.topic_decisions, b"from a zombie")
        zombie.ready()
        with pytest.raises(ProducerFenced):
            zombie.commit()
        with pytest.raises(TransactionFailed):
            zombie.begin_batch({(settings.topic_transactions, 0): 1})
        assert not zombie.open
    finally:
        consumer.close()


class _Departed:
    """The consumer side of a zombie: its group metadata from before it left the group;
    everything else answered by the member that took its partitions."""

    def __init__(self, metadata: object, successor: Consumer) -> None:
        self._metadata = metadata
        self._successor = successor

    def consumer_group_metadata(self) -> object:
        return self._metadata

    def __getattr__(self, name: str) -> object:
        return getattr(self._successor, name)


def test_a_zombie_whose_partitions_moved_cannot_commit(
        settings: Settings, support: TransactionSupport) -> None:
    if not support.fences_stale_member:
        # Not a CI failure: the embedded broker CI runs on has this gap (README, Tests).
        pytest.skip(f"broker gap: {STALE_MEMBER_ACCEPTED}: zombie check not made")
    settings = eos(settings)
    make_topics(settings, partitions=1)
    source = settings.topic_transactions
    produce_raw(settings, source, [(b"k", f"m{i}".encode()) for i in range(4)])
    member = Consumer(consumer_config(settings))
    member.subscribe([source])
    polled = _consume(member, 4)
    metadata = member.consumer_group_metadata()
    member.close()  # its partitions move on
    successor = Consumer(consumer_config(settings))
    successor.subscribe([source])
    producer = Producer(transactional_producer_config(settings, settings.transactional_id or ""))
    zombie = Transactions(producer, _Departed(metadata, successor), 60.0,
                          10.0)
    try:
        _assigned(successor)
        zombie.start()
        _relay(producer, zombie, polled, settings.topic_decisions)
        zombie.ready()
        with contextlib.suppress(TransactionFailed):  # stopping is as good as aborting
            assert zombie.commit() is False, "a zombie committed offsets"
        offset = successor.committed([TopicPartition(source, 0)], 20)[0].offset
    finally:
        successor.close()
    assert offset < 0, f"the zombie's offsets were committed ({offset})"
