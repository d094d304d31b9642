"""The worker against a real broker and a real Redis: decisions, dead letters, features."""

from __future__ import annotations

import time

import msgspec
import redis

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.epoch import sentinel_keys
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.registry import Registry
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.topic_identity import identity_key
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.metrics import counter_value
from tests.population import recent

NOW_MS = int(time.time() * 1000)


def json_id(raw: bytes | None) -> str:
    return str(msgspec.json.decode(raw or b"{}")["transaction_id"])


def _valid(tx_id: str, customer: str = "c1", amount: float = 12.5) -> bytes:
    return msgspec.json.encode({"transaction_id": tx_id, "timestamp": NOW_MS - 60_000,
                                "customer_id": customer, "terminal_id": "t1",
                                "amount": amount})


def test_every_transaction_gets_exactly_one_valid_decision(settings: Settings) -> None:
    make_topics(settings, partitions=4)
    config = recent(3)
    frame = simulate(config)
    sent = produce_frame(settings, frame)
    with running_worker(settings):
        records = read_topic(settings, settings.topic_decisions, expect=sent)
    decisions = [decision_decoder.decode(r.value) for r in records]
    ids = [d.transaction_id for d in decisions]
    assert len(ids) == sent, f"{sent} sent, {len(ids)} decisions"
    assert len(set(ids)) == sent, "duplicate decisions in a normal run"
    assert set(ids) == {str(i) for i in frame["transaction_id"]}
    champion = Registry(settings.model_dir).champion_version()
    for record, decision in zip(records, decisions, strict=True):
        assert record.key == decision.customer_id.encode()
        assert 0.0 <= decision.score <= 1.0
        assert decision.decision in OUTCOMES
        assert decision.model_version == champion
        assert decision.degraded == []
        assert decision.latency_ms >= 0
        if decision.decision == "approve":
            assert decision.reasons == []
        else:
            assert decision.reasons and set(decision.reasons) <= set(FEATURE_NAMES)


BAD_EVENTS: dict[str, tuple[bytes, str]] = {
    "not-json": (b"{this is not json", "not valid JSON"),
    "missing-field": (b'{"transaction_id": "m", "timestamp": 1700000000000, '
                      b'"customer_id": "c", "terminal_id": "t"}',
                      "missing required field `amount`"),
    "negative-amount": (_valid("neg", amount=-3.0), "Expected `float` > 0.0"),
    "text-amount": (b'{"transaction_id": "s", "timestamp": 1700000000000, "customer_id": "c",'
                    b' "terminal_id": "t", "amount": "12.50"}', "Expected `float`, got `str`"),
    "wrong-type": (b'{"transaction_id": "w", "timestamp": 1700000000000, "customer_id": [1],'
                   b' "terminal_id": "t", "amount": 3}', "customer_id"),
    "oversized": (_valid("big")[:-1] + b', "note": "' + b"x" * 20_000 + b'"}',
                  "exceeds the 16384-byte limit"),
}


def test_bad_events_go_to_the_dlq_with_reasons_and_neighbours_are_decided(
        settings: Settings) -> None:
    make_topics(settings, partitions=1)
    messages: list[tuple[bytes | None, bytes | None]] = [(b"c1", _valid("before"))]
    for name, (value, _) in BAD_EVENTS.items():
        messages.append((name.encode(), value))
    messages.append((b"c1", _valid("after")))
    produce_raw(settings, settings.topic_transactions, messages)
    with running_worker(settings):
        decisions = read_topic(settings, settings.topic_decisions, expect=2)
        dead = read_topic(settings, settings.topic_dlq, expect=len(BAD_EVENTS))
    assert sorted(decision_decoder.decode(r.value).transaction_id for r in decisions) == [
        "after", "before"]
    assert len(dead) == len(BAD_EVENTS)
    by_key = {r.key.decode(): r for r in dead}
    assert set(by_key) == set(BAD_EVENTS)
    for name, (value, reason) in BAD_EVENTS.items():
        record = by_key[name]
        assert record.value == value, f"{name}: the original bytes must be kept"
        assert reason in record.headers["error"].decode(), (name, record.headers["error"])
        assert record.headers["source.topic"].decode() == settings.topic_transactions
        assert record.headers["source.partition"] == b"0"
        assert int(record.headers["source.offset"]) == 1 + list(BAD_EVENTS).index(name)


def test_every_feature_key_has_a_ttl_beyond_the_longest_window(
        settings: Settings) -> None:
    make_topics(settings, partitions=2)
    frame = simulate(recent(2))
    sent = produce_frame(settings, frame)
    with running_worker(settings):
        read_topic(settings, settings.topic_decisions, expect=sent)
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
    bookkeeping = [*sentinel_keys(settings.redis_prefix),  # the state's epoch
                   identity_key(settings.redis_prefix, settings.topic_transactions)]
    assert len(keys) == (frame["customer_id"].nunique() + frame["terminal_id"].nunique()
                         + len(bookkeeping))
    assert set(bookkeeping) <= set(keys)
    ttls = [client.pttl(k) for k in keys]
    client.close()
    # The terminal windows reach 30 days + the 7-day label delay back.
    assert min(ttls) > 37 * 86_400_000, "every key needs a TTL beyond the longest window"


def test_events_far_from_the_clock_are_refused_without_touching_state(
        settings: Settings) -> None:
    make_topics(settings, partitions=1)
    day_ms = 86_400_000
    old = msgspec.json.encode({"transaction_id": "old", "timestamp": NOW_MS - 400 * day_ms,
                               "customer_id": "c9", "terminal_id": "t9", "amount": 5.0})
    future = msgspec.json.encode({"transaction_id": "future", "timestamp": NOW_MS + 3 * day_ms,
                                  "customer_id": "c9", "terminal_id": "t9", "amount": 5.0})
    produce_raw(settings, settings.topic_transactions,
                [(b"c9", old), (b"c9", future), (b"c9", _valid("now", customer="c9"))])
    with running_worker(settings):
        dead = read_topic(settings, settings.topic_dlq, expect=2)
        decisions = read_topic(settings, settings.topic_decisions, expect=1)
    reasons = {json_id(r.value): r.headers["error"].decode() for r in dead}
    assert reasons["old"] == "timestamp is 400.0 days old, beyond the 90-day limit"
    assert reasons["future"].endswith("in the future, beyond the 3600s limit")
    decision = decision_decoder.decode(decisions[0].value)
    assert decision.transaction_id == "now"
    client = redis.Redis.from_url(settings.redis_url)
    try:
        from fraudstream.features.customer_state import decode

        state = decode(client.get(f"{settings.redis_prefix}:c:c9".encode()))
    finally:
        client.close()
    assert sum(state.counts) == 1, "refused events must not reach the feature state"
    assert state.last_day == (NOW_MS - 60_000) // day_ms


def test_budget_misses_are_counted_and_the_compiled_scorer_is_reported(
        settings: Settings) -> None:
    """With a budget no batch can meet, every decided event is a counted miss."""
    settings = settings.replace(budget_ms=0.001)
    make_topics(settings, partitions=2)
    frame = simulate(recent(2))
    sent = produce_frame(settings, frame)
    with running_worker(settings) as worker:
        read_topic(settings, settings.topic_decisions, expect=sent, settle=0.2)
        misses = worker.metrics.budget_misses._value.get()
        info = {s.labels["backend"]: s.value for s in
                next(iter(worker.metrics.model_info.collect())).samples}
    assert misses == sent
    assert info == {"compiled": 1.0}
    assert worker.sizer.size == settings.min_batch  # cut down as far as allowed


def test_events_not_keyed_by_their_customer_are_counted(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    keys: list[bytes | None] = [b"c1"] * 4 + [b"terminal-t1"] * 3 + [None] * 2
    produce_raw(settings, settings.topic_transactions,
                [(key, _valid(f"k{i}")) for i, key in enumerate(keys)])
    with running_worker(settings) as worker:
        read_topic(settings, settings.topic_decisions, expect=len(keys), settle=0.5)
        assert counter_value(worker.metrics.foreign_keys) == 5
