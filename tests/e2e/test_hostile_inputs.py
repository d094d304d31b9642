"""The hostile corpus (tests/hostile_corpus.py), produced by a second Kafka client library
(aiokafka: its own protocol implementation, not librdkafka) and interleaved with valid
events, against a worker process: every valid event is decided exactly once, every bad
one is in the DLQ with its reason and source coordinates, the worker lives, and every
input offset ends up committed. Before, the first case (an ignored field nested 1,000
deep) ended the worker with RecursionError, and a dead letter or decision over 1 MB with
KafkaError MSG_SIZE_TOO_LARGE."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from fraudstream.settings import Settings
from fraudstream.stream.events import EventTimeBounds, Rejected, decode_transaction
from fraudstream.stream.kafka_config import downstream_consumer_config
from tests.e2e.cli import worker_process
from tests.hostile_corpus import Case, corpus, event, produce_with_aiokafka
from tests.kafka_helpers import make_topics, read_topic
from tests.waiting import wait_for

PARTITIONS = 2


def expected_outcome(case: Case, settings: Settings) -> str:
    """What the worker must do with ``case``: "decided" or "dead"."""
    bounds = EventTimeBounds.of(settings.max_event_age_days, settings.max_event_lead_s)
    try:
        _, ts = decode_transaction(case.value, settings.max_event_bytes,
                                   settings.max_json_depth)
        bounds.check(ts, int(time.time() * 1000))
    except Rejected:
        return "dead"
    return "decided"


def interleaved(cases: list[Case]) -> list[Case]:
    """Each hostile case followed by a valid event (ids ``v<n>``)."""
    out: list[Case] = []
    for n, case in enumerate(cases):
        out.append(case)
        out.append(Case(f"valid {n}", f"c{n}".encode(), json.dumps(event(f"v{n}")).encode()))
    return out


def _committed(settings: Settings) -> dict[int, int]:
    reader = Consumer(downstream_consumer_config(settings, settings.group_id))
    try:
        offsets = reader.committed([TopicPartition(settings.topic_transactions, p)
                                    for p in range(PARTITIONS)], timeout=10)
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in offsets}


def test_hostile_corpus_from_another_client_library(settings: Settings,
                                                    tmp_path: Path) -> None:
    make_topics(settings, partitions=PARTITIONS)
    cases = interleaved(corpus())
    expected = [expected_outcome(case, settings) for case in cases]
    assert len(corpus()) >= 40
    with worker_process(settings, tmp_path) as worker:
        produce_with_aiokafka(settings.kafka_bootstrap or "", settings.topic_transactions,
                              [(case.key, case.value) for case in cases], PARTITIONS)
        inputs = read_topic(settings, settings.topic_transactions, expect=len(cases),
                            settle=0.5)
        assert len(inputs) == len(cases)
        dead_expected = expected.count("dead")
        decided_expected = expected.count("decided")
        dead = read_topic(settings, settings.topic_dlq, expect=dead_expected, settle=1.0)
        decided = read_topic(settings, settings.topic_decisions, expect=decided_expected,
                             settle=1.0)
        end = {p: 1 + max(r.offset for r in inputs if r.partition == p)
               for p in range(PARTITIONS)}
        wait_for(lambda: _committed(settings) == end, timeout=30,
                 what=f"every input offset committed ({end})")
        assert worker.alive(), worker.tail()
        assert worker.stop() == 0, worker.tail()

    by_coordinates = {(r.partition, r.offset): r for r in inputs}
    position = {(case.key, case.value): n for n, case in enumerate(cases)}
    dead_at = Counter((int(r.headers["source.partition"]), int(r.headers["source.offset"]))
                      for r in dead)
    decided_ids = Counter(json.loads(r.value or b"{}")["transaction_id"] for r in decided)
    got: dict[str, str] = {}
    for coordinates, record in by_coordinates.items():
        n = position[(record.key, record.value)]
        case, outcome = cases[n], expected[n]
        if outcome == "dead":
            assert dead_at[coordinates] == 1, f"{case.name}: dead-lettered {dead_at[coordinates]}"
        else:
            tx_id = json.loads(case.value or b"{}")["transaction_id"]
            assert decided_ids[str(tx_id)] == 1, f"{case.name}: decided {decided_ids[tx_id]}"
            assert dead_at[coordinates] == 0, f"{case.name}: also dead-lettered"
        got[case.name] = outcome
    for record in dead:
        assert record.headers.get("error"), record.headers
        assert record.headers["source.topic"].decode() == settings.topic_transactions
        assert len(record.value or b"") + len(record.key or b"") <= \
            settings.producer_max_message_bytes
    big = [r for r in dead if "truncated" in r.headers]
    assert {r.headers["truncated"] for r in big} >= {b"value", b"key,value"}
    for record in big:
        assert "original.value.sha256" in record.headers or "original.key.sha256" in record.headers
    for record in decided:
        assert len(record.key or b"") <= 512, "an over-long key was copied into a decision"
    hostile = {c.name: got[c.name] for c in corpus()}
    print("[hostile corpus] " + "; ".join(f"{name}: {outcome}"
                                          for name, outcome in hostile.items()))
    print(f"[hostile corpus] sent={len(cases)} decided={len(decided)} dead={len(dead)} "
          f"lost=0 worker_exit=0")
