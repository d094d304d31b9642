"""What a team writes first: one event at a time, one Redis call per entity, one
``predict_proba`` row and one produce per event. Same features, model and decisions."""

from __future__ import annotations

import time

import numpy as np
import redis

from fraudstream.bench.peer import Peer
from fraudstream.features import customer_state, terminal_state
from fraudstream.features.definitions import DAY_MS, to_cents
from fraudstream.features.online import (
    TransactionBatch,
    _calendar_columns,
    _customer_event,
    _terminal_event,
    _window_columns,
    customer_key,
    terminal_key,
)
from fraudstream.models.calibration import Calibration
from fraudstream.models.decisions import OUTCOMES, decide
from fraudstream.models.registry import Registry
from fraudstream.security import redis_auth
from fraudstream.stream.decisions import Decision, encode_decision
from fraudstream.stream.events import Rejected, decode_transaction, decoded_id
from fraudstream.stream.poll import consumed_at


def _stored(reply: bytes | str | None) -> bytes | None:
    """A GET reply of a client that does not decode responses (redis-py's types cannot
    tell and say ``bytes | str | None``)."""
    assert not isinstance(reply, str), "the client is made without decode_responses"
    return reply


def main() -> None:
    peer = Peer.start()
    settings, consumer, producer = peer.settings, peer.consumer, peer.producer
    artifact = Registry(settings.model_dir).load_champion()
    model, thresholds = artifact.model, artifact.thresholds
    calibration = Calibration.from_manifest(artifact.manifest.get("calibration"))
    assert settings.redis_url is not None, "the benchmark gives every peer its Redis"
    client = redis.Redis.from_url(settings.redis_url, **redis_auth(settings).client_kwargs())
    prefix = settings.redis_prefix.encode()
    ttl = settings.feature_ttl_days * DAY_MS
    while peer.running:
        message = consumer.poll(0.05)
        if message is None or message.error() is not None:
            continue
        started = time.perf_counter()
        try:
            event, ts = decode_transaction(message.value(), settings.max_event_bytes)
        except Rejected:
            continue
        customer_id, terminal_id = decoded_id(event.customer_id), decoded_id(event.terminal_id)
        _, partition, offset = consumed_at(message)
        ckey = customer_key(prefix, customer_id)
        tkey = terminal_key(prefix, terminal_id)
        customer = customer_state.decode(_stored(client.get(ckey)))
        terminal = terminal_state.decode(_stored(client.get(tkey)))
        cents = int(to_cents(np.array([event.amount]))[0])
        counts, sums, gap, _ = _customer_event(customer, ts, cents, partition, offset)
        t_counts, t_frauds, _ = _terminal_event(terminal, ts // DAY_MS, partition, offset)
        batch = TransactionBatch([customer_id], [terminal_id],
                                 np.array([ts]), np.array([event.amount]), np.array([0]),
                                 np.array([0]))
        row = _calendar_columns(batch)
        _window_columns(row, np.array([counts]), np.array([sums]), np.array([gap]),
                        np.array([t_counts]), np.array([t_frauds]))
        score = float(calibration.apply(model.predict_proba(row)[:, 1])[0])
        code = int(decide(np.array([score]), thresholds)[0])
        decision = Decision(
            transaction_id=decoded_id(event.transaction_id), customer_id=customer_id,
            score=score, decision=OUTCOMES[code], model_version=artifact.version, reasons=[],
            degraded=[], scored_at=int(time.time() * 1000),
            latency_ms=round((time.perf_counter() - started) * 1000, 3))
        producer.produce(settings.topic_decisions, encode_decision(decision), message.key())
        producer.poll(0)
        client.set(ckey, customer_state.encode(customer), px=ttl)
        client.set(tkey, terminal_state.encode(terminal), px=ttl)
    peer.close()


if __name__ == "__main__":
    main()
