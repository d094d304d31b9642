"""The pipeline written idiomatically with Quix Streams: one message at a time through a
StreamingDataFrame, with the same feature store, scorer and decision events.

Runs in its own virtual environment (quixstreams pins an older confluent-kafka), with the
repository on PYTHONPATH; ``fraudstream bench`` creates that environment."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from threadpoolctl import threadpool_limits

from fraudstream import model_trust
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import RedisStateStore
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer
from fraudstream.security import redis_auth
from fraudstream.settings import Settings
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.decisions import encode_decision
from fraudstream.stream.events import Rejected, decode_transaction, decoded_id
from fraudstream.stream.kafka_config import connection_config
from fraudstream.stream.metrics import WorkerMetrics


def main() -> None:
    settings = Settings.from_env()
    model_trust.configure(settings)
    threadpool_limits(limits=1)
    scorer = Scorer(Registry(settings.model_dir).load_champion(), FEATURE_NAMES)
    features = OnlineFeatureStore(RedisStateStore.from_url(settings.redis_url or "",
                                                           auth=redis_auth(settings)),
                                  settings.redis_prefix, settings.feature_ttl_days)
    core = DecisionCore(features, CircuitBreaker(settings.breaker_failures,
                                                 settings.breaker_reset_s),
                        WorkerMetrics.create(CollectorRegistry()))
    # Consumer, producer and admin all connect with this: bootstrap, SASL and TLS.
    broker = ConnectionConfig.from_librdkafka_dict(connection_config(settings))
    app = Application(broker_address=broker,
                      consumer_group=settings.group_id, auto_offset_reset="earliest",
                      consumer_extra_config={"session.timeout.ms": settings.session_timeout_ms,
                                             "heartbeat.interval.ms":
                                             settings.heartbeat_interval_ms})
    source = app.topic(settings.topic_transactions, key_deserializer="bytes",
                       value_deserializer="bytes")
    sink = app.topic(settings.topic_decisions, key_serializer="bytes",
                     value_serializer="bytes")

    def score(value: bytes, key: Any, timestamp: int, headers: Any) -> bytes | None:
        started = time.perf_counter()
        try:
            event, ts = decode_transaction(value, settings.max_event_bytes,
                                           settings.max_json_depth)
        except Rejected:
            return None
        context = message_context()
        customer_id = decoded_id(event.customer_id)
        batch = TransactionBatch([customer_id], [decoded_id(event.terminal_id)],
                                 np.array([ts]), np.array([event.amount]),
                                 np.array([context.partition]), np.array([context.offset]))
        decided = core.decide(batch, scorer)
        if decided.update is not None:
            features.update(decided.update)
        return encode_decision(decided.decision(
            0, decoded_id(event.transaction_id), customer_id, int(time.time() * 1000),
            round((time.perf_counter() - started) * 1000, 3)))

    frame = app.dataframe(source)
    frame = frame.apply(score, metadata=True).filter(lambda value: value is not None)
    frame.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
