"""What the broker under test does with transactions: probed once per session, so tests
can say which exactly-once check the broker could not support instead of pretending."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.waiting import wait_for

TIMEOUT_S = 20.0
# The gaps a broker can have, as tests name them when they narrow or skip a check.
ABORTED_VISIBLE = "read_committed readers see records of aborted transactions"
SAME_ID_NOT_FENCED = ("a second producer with the same transactional.id does not fence "
                      "the first")
STALE_MEMBER_ACCEPTED = ("offsets sent with a departed group member's metadata are "
                         "accepted (no KIP-447 zombie fencing)")


@dataclass(frozen=True)
class TransactionSupport:
    hides_aborted: bool  # read_committed readers skip records of aborted transactions
    fences_same_id: bool  # init_transactions by a new producer fences the old one
    fences_stale_member: bool  # offsets sent with a departed member's metadata are refused

    def gaps(self) -> list[str]:
        missing = []
        if not self.hides_aborted:
            missing.append(ABORTED_VISIBLE)
        if not self.fences_same_id:
            missing.append(SAME_ID_NOT_FENCED)
        if not self.fences_stale_member:
            missing.append(STALE_MEMBER_ACCEPTED)
        return missing


@functools.lru_cache(maxsize=4)
def probe_transactions(bootstrap: str) -> TransactionSupport:
    topic = f"txn-probe-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(TIMEOUT_S)
    return TransactionSupport(hides_aborted=_hides_aborted(bootstrap, topic),
                              fences_same_id=_fences_same_id(bootstrap, topic),
                              fences_stale_member=_fences_stale_member(bootstrap, topic))


def _producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "transaction.timeout.ms": 10_000, "log_level": 0})
    producer.init_transactions(TIMEOUT_S)
    return producer


def _hides_aborted(bootstrap: str, topic: str) -> bool:
    producer = _producer(bootstrap, f"{topic}-aborts")
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush(TIMEOUT_S)
    producer.abort_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(TIMEOUT_S)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                       "isolation.level": "read_committed", "enable.auto.commit": False,
                       "log_level": 0})
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[bytes] = []

    def committed_seen() -> bool:
        message = reader.poll(0.2)
        if message is not None and message.error() is None:
            seen.append(message.value())
        return b"committed" in seen

    try:
        wait_for(committed_seen, lambda: f"the probe's committed record ({seen})", TIMEOUT_S, 0)
    finally:
        reader.close()
    return b"aborted" not in seen


def _fences_same_id(bootstrap: str, topic: str) -> bool:
    first = _producer(bootstrap, f"{topic}-fence")
    _producer(bootstrap, f"{topic}-fence")
    try:
        first.begin_transaction()
        first.produce(topic, b"zombie")
        first.commit_transaction(TIMEOUT_S)
    except KafkaException:
        return True
    return False


def _fences_stale_member(bootstrap: str, topic: str) -> bool:
    group = f"{topic}-group"
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                       "enable.auto.commit": False, "log_level": 0})
    member.subscribe([topic])

    def assigned() -> bool:
        member.poll(0.2)
        return bool(member.assignment())

    wait_for(assigned, "the probe's member to get its partition", TIMEOUT_S, 0)
    metadata = member.consumer_group_metadata()
    member.close()  # leaves the group: its metadata is now a zombie's
    producer = _producer(bootstrap, f"{topic}-member")
    producer.begin_transaction()
    producer.produce(topic, b"from a departed member")
    try:
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], metadata,
                                             TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S)
    except KafkaException:
        return True
    return False
