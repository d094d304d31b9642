"""The fraudstream pipeline as a Faust agent, for teams standardised on Faust.

The same decision core as ``fraudstream worker`` (``stream.core.DecisionCore``): the
stream's decoder and its failure policy (any message that cannot be decided goes to the
DLQ with its reason and source coordinates, cut to fit), one feature-store read per
batch behind the circuit breaker with degraded mode, the rules fallback, labels applied
by a second agent, and the same decision events. Faust owns consumption and commits.
Run it with::

    python -m fraudstream.stream.faust_app worker -l warn

Settings come from the same ``FRAUDSTREAM_*`` variables. The Redis calls are made from
the agents' coroutines (they are short and batched); the model runs in-line.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import faust
import numpy as np
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from fraudstream import model_trust
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.models.follower import ModelSet, RegistryFollower
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import load_scorer
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.stream.batch_decode import decode_transactions
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.dead_letters import dead_letter
from fraudstream.stream.decisions import decision_keys
from fraudstream.stream.events import EventTimeBounds, Rejected, decode_label
from fraudstream.stream.faust_security import faust_credentials
from fraudstream.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class _Source:
    """A Faust event seen as the consumed message a dead letter is made from."""

    def __init__(self, event: Any) -> None:
        self._event = event

    def key(self) -> bytes | None:
        # no-any-return: faust ships no type information
        return self._event.key  # type: ignore[no-any-return]
    def value(self) -> bytes | None:
        # no-any-return: faust ships no type information
        return self._event.value  # type: ignore[no-any-return]
    def topic(self) -> str:
        # no-any-return: faust ships no type information
        return self._event.message.topic  # type: ignore[no-any-return]

    def partition(self) -> int:
        # no-any-return: faust ships no type information
        return self._event.message.partition  # type: ignore[no-any-return]

    def offset(self) -> int:
        # no-any-return: faust ships no type information
        return self._event.message.offset  # type: ignore[no-any-return]


def _accepted(events: list[Any], decode: Callable[[bytes | None], Any],
              ) -> tuple[list[tuple[Any, Any]], list[tuple[Any, str]]]:
    """(event, decoded) pairs and (event, reason) rejections: whatever one message
    raises, only that message is rejected."""
    kept: list[tuple[Any, Any]] = []
    rejected: list[tuple[Any, str]] = []
    for event in events:
        try:
            kept.append((event, decode(event.value)))
        except Rejected as exc:
            rejected.append((event, exc.reason))
        except Exception as exc:
            rejected.append((event, f"cannot process: {type(exc).__name__}: {exc}"))
    return kept, rejected


# FRAUDSTREAM_AUTO_OFFSET_RESET in aiokafka's words ("none" raises, as librdkafka's "error").
FAUST_OFFSET_RESET = {"earliest": "earliest", "latest": "latest", "error": "none"}


def app_options(settings: Settings) -> dict[str, Any]:
    """``faust.App``'s options from the worker's settings."""
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "value_serializer": "raw", "key_serializer": "raw",
        "store": "memory://", "web_enabled": False,
        "consumer_auto_offset_reset": FAUST_OFFSET_RESET[settings.auto_offset_reset],
        "broker_session_timeout": settings.session_timeout_ms / 1000.0,
        "broker_heartbeat_interval": settings.heartbeat_interval_ms / 1000.0,
        "producer_max_request_size": settings.producer_max_message_bytes,
        "topic_allow_declare": False, "topic_disable_leader": True,
        "broker_credentials": faust_credentials(settings),
    }


def create_app(settings: Settings) -> tuple[faust.App, Any]:
    app = faust.App(f"{settings.group_id}-faust",
                    datadir=tempfile.mkdtemp(prefix="fraudstream-faust-"),
                    **app_options(settings))
    transactions = app.topic(settings.topic_transactions, key_type=bytes, value_type=bytes)
    labels = app.topic(settings.topic_labels, key_type=bytes, value_type=bytes)
    decisions = app.topic(settings.topic_decisions, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes)
    threadpool_limits(limits=1)
    registry = Registry(settings.model_dir)
    models = ModelSet(load_scorer(registry.load_champion()))
    follower = RegistryFollower(registry, models, load_scorer, settings.model_poll_s).start()
    features = OnlineFeatureStore(feature_state_store(settings, timeout_s=0.5),
                                  settings.redis_prefix, settings.feature_ttl_days)
    core = DecisionCore(features, CircuitBreaker(settings.breaker_failures,
                                                 settings.breaker_reset_s),
                        WorkerMetrics.create(CollectorRegistry()))
    bounds = EventTimeBounds.of(settings.max_event_age_days, settings.max_event_lead_s)

    def label(raw: bytes | None) -> tuple[Any, int]:
        found, ts, _ = decode_label(raw, settings.max_event_bytes, settings.max_json_depth)
        bounds.check(ts, int(time.time() * 1000))
        return found, ts

    async def dead_letter_all(rejected: list[tuple[Any, str]]) -> None:
        for event, reason in rejected:
            # arg-type: _Source gives dead_letter what a confluent Message would
            letter = dead_letter(_Source(event), reason,  # type: ignore[arg-type]
                                 settings.producer_max_message_bytes)
            await dead_letters.send(key=letter.key, value=letter.value,
                                    headers=letter.headers)

    @app.agent(transactions)
    async def score(stream: Any) -> None:
        scorer = models.champion
        async for events in stream.take_events(settings.max_batch,
                                               within=max(settings.max_wait_ms, 1) / 1000):
            if (promoted := follower.take()) is not None:  # between batches, as the worker
                scorer = promoted.champion
            started = time.perf_counter()
            decoded = decode_transactions(
                [event.value for event in events], settings.max_event_bytes,
                settings.max_json_depth, bounds, int(time.time() * 1000))
            await dead_letter_all([(events[i], reason) for i, reason in decoded.rejected])
            if not decoded:
                continue
            kept = [events[i] for i in decoded.positions]
            batch = TransactionBatch(
                decoded.customer_ids, decoded.terminal_ids, decoded.timestamps_array(),
                decoded.amounts_array(),
                np.array([e.message.partition for e in kept], dtype=np.int64),
                np.array([e.message.offset for e in kept], dtype=np.int64),
                decoded.transaction_ids)
            decided = core.decide(batch, scorer)
            values = decided.encoded(decoded.transaction_ids, decoded.customer_ids,
                                     int(time.time() * 1000), started)
            keys = decision_keys([event.key for event in kept], decoded.customer_ids)
            for key, value in zip(keys, values, strict=True):
                await decisions.send(key=key, value=value)
            if decided.update is not None:  # or kept in the core's backlog for later
                core.write(decided.update, batch)
                core.complete()

    @app.agent(labels)
    async def apply_labels(stream: Any) -> None:
        async for events in stream.take_events(settings.max_batch,
                                               within=max(settings.max_wait_ms, 1) / 1000):
            kept, rejected = _accepted(events, label)
            await dead_letter_all(rejected)
            if kept:
                found = [item for _, (item, _) in kept]
                core.apply_labels(LabelBatch(
                    [item.transaction_id for item in found],
                    [item.terminal_id for item in found],
                    np.asarray([ts for _, (_, ts) in kept], dtype=np.int64),
                    np.asarray([item.is_fraud for item in found], dtype=bool)))

    return app, score


def without_web(argv: list[str]) -> list[str]:
    """``argv`` with ``--without-web`` after ``worker`` unless the web server is asked for:
    faust's ``worker`` command starts it on port 6066 whatever ``web_enabled`` says, so two
    agents on one host would collide on a port the runtime does not use."""
    if argv[1:2] == ["worker"] and not any(a in ("--with-web", "--without-web")
                                           for a in argv[2:]):
        return [*argv[:2], "--without-web", *argv[2:]]
    return argv


def main() -> None:
    settings = Settings.from_env()
    model_trust.configure(settings)
    app, _ = create_app(settings)
    sys.argv = without_web(sys.argv)
    app.main()


if __name__ == "__main__":
    main()
