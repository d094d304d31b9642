"""The fraudstream pipeline as a Faust agent, for teams standardised on Faust.

Same decoding, feature store, scorer and decision events as ``fraudstream worker``;
Faust owns consumption and commits. Run it with::

    python -m stream.faust_app worker -l warn

Settings come from the same ``FRAUDSTREAM_*`` variables. The Redis calls are made from
the agent's coroutine (they are short and batched); the model runs in-line.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import faust
import numpy as np
from threadpoolctl import threadpool_limits

from features.online import OnlineFeatureStore, TransactionBatch
from fraudstream import model_trust
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from models.decisions import OUTCOMES
from models.follower import ModelSet, RegistryFollower
from models.registry import Registry
from models.scorer import load_scorer
from stream.decisions import Decision, encode_decision
from stream.events import EventTimeBounds, Rejected, decode_transaction
from stream.faust_security import faust_credentials


def create_app(settings: Settings) -> tuple[faust.App, Any]:
    app = faust.App(
        f"{settings.group_id}-faust",
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw", key_serializer="raw",
        store="memory://", web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="fraudstream-faust-"),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000.0,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000.0,
        topic_allow_declare=False, topic_disable_leader=True,
        broker_credentials=faust_credentials(settings),
    )
    transactions = app.topic(settings.topic_transactions, key_type=bytes, value_type=bytes)
    decisions = app.topic(settings.topic_decisions, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes)
    threadpool_limits(limits=1)
    registry = Registry(settings.model_dir)
    models = ModelSet(load_scorer(registry.load_champion()))
    follower = RegistryFollower(registry, models, load_scorer, settings.model_poll_s).start()
    features = OnlineFeatureStore(feature_state_store(settings, timeout_s=0.5),
                                  settings.redis_prefix, settings.feature_ttl_days)
    bounds = EventTimeBounds.of(settings.max_event_age_days, settings.max_event_lead_s)

    @app.agent(transactions)
    async def score(stream: Any) -> None:
        scorer = models.champion
        async for events in stream.take_events(settings.max_batch,
                                               within=max(settings.max_wait_ms, 1) / 1000):
            if (promoted := follower.take()) is not None:  # between batches, as the worker
                scorer = promoted.champion
            started = time.perf_counter()
            now_ms = int(time.time() * 1000)
            kept, ids, customers, terminals, stamps, amounts = [], [], [], [], [], []
            for event in events:
                try:
                    tx, ts = decode_transaction(event.value, settings.max_event_bytes)
                    bounds.check(ts, now_ms)
                except Rejected as exc:
                    await dead_letters.send(key=event.key, value=event.value,
                                            headers={"error": exc.reason.encode()})
                    continue
                kept.append(event)
                ids.append(tx.transaction_id)
                customers.append(tx.customer_id)
                terminals.append(tx.terminal_id)
                stamps.append(ts)
                amounts.append(tx.amount)
            if not kept:
                continue
            batch = TransactionBatch(
                customers, terminals, np.asarray(stamps, dtype=np.int64),
                np.asarray(amounts, dtype=np.float64),
                np.array([e.message.partition for e in kept], dtype=np.int64),
                np.array([e.message.offset for e in kept], dtype=np.int64))
            matrix, pending = features.fetch(batch)
            scored = scorer.score(matrix)
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            scored_at = int(time.time() * 1000)
            for i, event in enumerate(kept):
                decision = Decision(
                    transaction_id=ids[i], customer_id=customers[i],
                    score=float(scored.scores[i]),
                    decision=OUTCOMES[int(scored.codes[i])], model_version=scorer.version,
                    reasons=scored.reasons[i], degraded=[], scored_at=scored_at,
                    latency_ms=latency_ms)
                await decisions.send(key=event.key, value=encode_decision(decision))
            features.update(pending)

    return app, score


def main() -> None:
    settings = Settings.from_env()
    model_trust.configure(settings)
    app, _ = create_app(settings)
    app.main()


if __name__ == "__main__":
    main()
