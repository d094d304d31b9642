"""A feature state the worker cannot parse (a value of another format version, or foreign
bytes under one of our keys) on a real Redis: counted by key prefix, read as absent and
replaced, and the decisions go on, not degraded. Before, ``StateFormatError`` or
``TerminalStateError`` ended the worker."""

from __future__ import annotations

import json
import time

import redis
from prometheus_client import CollectorRegistry

from fraudstream.features import customer_state, terminal_state
from fraudstream.settings import Settings
from fraudstream.stream.app import build_worker
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker


def test_unreadable_states_are_counted_read_as_absent_and_decisions_continue(
        settings: Settings) -> None:
    make_topics(settings, partitions=2)
    client = redis.Redis.from_url(settings.redis_url or "")
    prefix = settings.redis_prefix
    another_version = bytes([customer_state.VERSION + 7]) + bytes(customer_state.STATE_BYTES - 1)
    client.set(f"{prefix}:c:newer", another_version)
    client.set(f"{prefix}:c:foreign", b"not a feature state at all")
    client.set(f"{prefix}:t:foreign-terminal", b"\x02short")
    now = int(time.time() * 1000)
    events = [{"transaction_id": f"u{i}", "timestamp": now - 60_000, "customer_id": customer,
               "terminal_id": terminal, "amount": 20.0 + i}
              for i, (customer, terminal) in enumerate([
                  ("newer", "fine-terminal"), ("foreign", "foreign-terminal"),
                  ("fine", "fine-terminal")])]
    registry = CollectorRegistry()
    worker = build_worker(settings, registry)
    with running_worker(settings, worker):
        produce_raw(settings, settings.topic_transactions,
                    [(e["customer_id"].encode(), json.dumps(e).encode())
                     for e in events])
        decisions = read_topic(settings, settings.topic_decisions, expect=3, settle=1.0)
    decided = {json.loads(r.value or b"")["transaction_id"]: json.loads(r.value or b"")
               for r in decisions}
    assert sorted(decided) == ["u0", "u1", "u2"]
    assert all(d["degraded"] == [] for d in decided.values()), decided
    counted = {p: registry.get_sample_value("fraudstream_feature_state_unreadable_total",
                                            {"prefix": f"{prefix}:{p}"}) for p in "ct"}
    assert counted == {"c": 2.0, "t": 1.0}
    # Read as absent, then replaced by the state of the event just applied.
    assert customer_state.decode(client.get(f"{prefix}:c:newer")).offset >= 0
    assert customer_state.decode(client.get(f"{prefix}:c:foreign")).offset >= 0
    assert terminal_state.decode(client.get(f"{prefix}:t:foreign-terminal")).marks
