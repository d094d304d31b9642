"""Assemble a worker from settings and run it until a signal says stop."""

from __future__ import annotations

import gc
import logging
import os
import signal
from types import FrameType

from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, start_http_server
from threadpoolctl import threadpool_limits

from fraudstream import logs
from fraudstream.errors import ConfigError
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.epoch import StateEpoch
from fraudstream.features.online import OnlineFeatureStore
from fraudstream.models.follower import ModelSet, RegistryFollower
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer, load_scorer
from fraudstream.security import check_feature_state_store, feature_state_store
from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import admin_config
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.stream.topic_identity import TopicIdentity, describe_topic_id
from fraudstream.stream.worker import Worker

log = logging.getLogger(__name__)
# The periodic check of the topic's identity runs in the worker's loop: it may not hold
# the loop longer than this (a slow answer is tried again at the next check).
TOPIC_DESCRIBE_TIMEOUT_S = 1.0


def require_services(settings: Settings) -> None:
    if not settings.kafka_bootstrap:
        raise ConfigError("no broker configured: set FRAUDSTREAM_KAFKA_BOOTSTRAP "
                          "(or run `fraudstream demo`, which starts embedded services)")
    if not settings.redis_url:
        raise ConfigError("no Redis configured: set FRAUDSTREAM_REDIS_URL")


def build_worker(settings: Settings, registry: CollectorRegistry | None = None) -> Worker:
    require_services(settings)
    # OpenMP worker threads spinning against the broker and Redis on a small machine
    # turned a 4 ms p99 into seconds; a worker scales by processes, so one thread each.
    threadpool_limits(limits=1)
    models = Registry(settings.model_dir)
    scorer = load_scorer(models.load_champion())
    challenger = _load_challenger(models)
    logs.bind(model_version=scorer.version, pid=os.getpid())
    store = feature_state_store(settings)
    features = OnlineFeatureStore(store, settings.redis_prefix, settings.feature_ttl_days)
    metrics = WorkerMetrics.create(registry or CollectorRegistry())
    trouble = check_feature_state_store(store, settings)
    if trouble is not None:  # degraded mode will handle it; say so early
        log.warning("redis not answering at start-up: %s", trouble)
    follower = RegistryFollower(
        models, ModelSet(scorer, challenger), load_scorer, settings.model_poll_s,
        listener=lambda role, _version, outcome: metrics.model_loads.labels(
            role, outcome).inc())
    # The model, libraries and caches loaded so far live for the whole run: keep them out
    # of every collection, and collect young objects less often, so collector pauses stay
    # out of the per-event latency tail.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    ttl_ms = settings.feature_ttl_days * DAY_MS
    epoch = StateEpoch(store, settings.redis_prefix, ttl_ms)
    topic = settings.topic_transactions
    identity = TopicIdentity(
        store, settings.redis_prefix, topic, ttl_ms,
        describe_topic_id(AdminClient(admin_config(settings)), topic,
                          TOPIC_DESCRIBE_TIMEOUT_S), metrics.topic_recreations)
    worker = Worker(settings, scorer, features, metrics, follower=follower,
                    challenger=challenger, epoch=epoch, identity=identity)
    follower.start()
    return worker


def _load_challenger(models: Registry) -> Scorer | None:
    version = models.challenger_version()
    if version is None or version == models.champion_version():
        return None
    try:
        return load_scorer(models.load(version))
    except Exception as exc:  # the champion decides; shadowing can wait
        log.error("challenger %s refused, not shadowing: %s", version, exc)
        return None


def run_worker(settings: Settings) -> int:
    registry = CollectorRegistry()
    worker = build_worker(settings, registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0", registry=registry)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batch in hand", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker.run()
    return 0
