"""Assemble the scoring path from settings: model, feature store, breaker, limits."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fraudstream.errors import ConfigError
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch, default_matrix
from fraudstream.security import check_feature_state_store, feature_state_store
from fraudstream.settings import Settings
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.events import EventTimeBounds
from fraudstream.stream.http.metrics import HttpMetrics
from fraudstream.stream.http.model import ModelHolder
from fraudstream.stream.http.payloads import Limits
from fraudstream.stream.http.scoring import RequestScorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringService:
    settings: Settings
    model: ModelHolder
    scorer: RequestScorer
    limits: Limits
    metrics: HttpMetrics


def require_redis(settings: Settings) -> str:
    """The Redis URL, or ConfigError: the HTTP scorer cannot work without the state."""
    if not settings.redis_url:
        raise ConfigError("no Redis configured: set FRAUDSTREAM_REDIS_URL (the HTTP scorer "
                          "reads the stream's feature state from it)")
    return settings.redis_url


def build_service(settings: Settings, metrics: HttpMetrics,
                  model_dir: str | Path | None = None) -> ScoringService:
    """Load the champion (from ``model_dir`` or the settings' registry), connect the
    feature store and warm both up, as the worker does before its first poll."""
    require_redis(settings)
    # One thread each, as in the worker: OpenMP threads spinning beside the server,
    # Redis and the broker on a small machine cost more than they give.
    threadpool_limits(limits=1)
    model = ModelHolder.champion(model_dir if model_dir is not None else settings.model_dir,
                                 settings.model_poll_s, on_swap=metrics.model_swapped)
    scorer = model.current()
    store = feature_state_store(settings)
    features = OnlineFeatureStore(store, settings.redis_prefix, settings.feature_ttl_days)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
    metrics.model_info.labels(scorer.version, scorer.backend).set(1)
    metrics.feature_store_up.set(1)
    trouble = check_feature_state_store(store, settings)
    if trouble is not None:  # degraded mode handles it; say so early
        log.warning("redis not answering at start-up: %s", trouble)
    request_scorer = RequestScorer(model, features, breaker, metrics)
    _warm_up(request_scorer)
    gc.collect()
    gc.freeze()  # the model and libraries live as long as the process
    limits = Limits(settings.api_max_batch, settings.max_event_bytes,
                    EventTimeBounds.of(settings.max_event_age_days, settings.max_event_lead_s),
                    settings.max_json_depth)
    return ScoringService(settings, model, request_scorer, limits, metrics)


def _warm_up(scorer: RequestScorer) -> None:
    """Pay first-call costs (allocations, the Redis connection) before the first request;
    a Redis that does not answer yet is only logged: degraded mode handles it."""
    now = int(time.time() * 1000)
    batch = TransactionBatch(["warm-up"], ["warm-up"], np.array([now]), np.array([1.0]),
                             np.array([0]), np.array([0]))
    scorer.model.current().score(default_matrix(batch))
    with contextlib.suppress(Exception):  # a Redis that is down was reported already
        scorer.features.fetch(batch)
