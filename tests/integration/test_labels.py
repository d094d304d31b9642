"""Confirmed labels through a running worker: late, twice, unknown, malformed."""

from __future__ import annotations

import time

import msgspec
import redis

from fraudstream.features import terminal_state
from fraudstream.settings import Settings
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.metrics import counter_value
from tests.waiting import wait_for

DAY_MS = 86_400_000
NOW_MS = int(time.time() * 1000)


def _tx(tx_id: str, terminal: str, ts: int) -> bytes:
    return msgspec.json.encode({"transaction_id": tx_id, "timestamp": ts,
                                "customer_id": f"cust-{tx_id}", "terminal_id": terminal,
                                "amount": 20.0})


def _label(tx_id: str, terminal: str, ts: int, fraud: bool = True) -> bytes:
    return msgspec.json.encode({"transaction_id": tx_id, "customer_id": f"cust-{tx_id}",
                                "terminal_id": terminal, "timestamp": ts,
                                "label_time": NOW_MS, "is_fraud": fraud})


def test_labels_are_counted_at_most_once_and_ignored_ones_are_counted(
        settings: Settings) -> None:
    make_topics(settings, partitions=2)
    ten_days_ago = NOW_MS - 10 * DAY_MS
    transactions = [(f"cust-{i}".encode(), _tx(f"tx{i}", "T1", ten_days_ago + i * 1000))
                    for i in range(3)]
    produce_raw(settings, settings.topic_transactions, transactions)
    with running_worker(settings) as worker:
        read_topic(settings, settings.topic_decisions, expect=3, settle=0.1)
        labels = [
            _label("tx2", "T1", ten_days_ago + 2000),           # arrives before tx0's label
            _label("tx0", "T1", ten_days_ago),
            _label("tx0", "T1", ten_days_ago),                  # the same label twice
            _label("tx1", "T1", ten_days_ago + 1000, fraud=False),
            _label("ghost", "T-unknown", ten_days_ago),         # a terminal never seen
            _label("tx9", "T1", ten_days_ago - DAY_MS),         # a day T1 had no transactions
        ]
        produce_raw(settings, settings.topic_labels, [(b"k", v) for v in labels])
        wait_for(lambda: worker.labels_applied >= len(labels), "every label applied", 30)
        metrics = worker.metrics
        assert counter_value(metrics.labels, outcome="applied") == 2
        assert counter_value(metrics.labels, outcome="duplicate") == 1
        assert counter_value(metrics.labels, outcome="legit") == 1
        assert counter_value(metrics.labels, outcome="unknown") == 2
    client = redis.Redis.from_url(settings.redis_url)
    try:
        state = terminal_state.decode(client.get(f"{settings.redis_prefix}:t:T1".encode()))
    finally:
        client.close()
    assert sum(state.counts) == 3
    assert sum(state.frauds) == 2


def test_malformed_labels_go_to_the_dlq_with_their_reason(settings: Settings) -> None:
    make_topics(settings, partitions=1)
    bad = {
        b"no-fraud-flag": msgspec.json.encode({"transaction_id": "x", "customer_id": "c",
                                               "terminal_id": "t", "timestamp": NOW_MS,
                                               "label_time": NOW_MS}),
        b"text-flag": msgspec.json.encode({"transaction_id": "x", "customer_id": "c",
                                           "terminal_id": "t", "timestamp": NOW_MS,
                                           "label_time": NOW_MS, "is_fraud": "yes"}),
        b"garbage": b"\xff\xfe not json",
    }
    produce_raw(settings, settings.topic_labels, list(bad.items()))
    with running_worker(settings):
        dead = read_topic(settings, settings.topic_dlq, expect=len(bad))
    assert {r.key for r in dead} == set(bad)
    reasons = {r.key: r.headers["error"].decode() for r in dead}
    assert "missing required field `is_fraud`" in reasons[b"no-fraud-flag"]
    assert "Expected `bool`, got `str`" in reasons[b"text-flag"]
    assert "not valid JSON" in reasons[b"garbage"]
    assert all(r.headers["source.topic"].decode() == settings.topic_labels for r in dead)
