"""The HTTP scorer's metrics, every name prefixed ``fraudstream_http_``.

With one server process they live in a private registry. With ``--workers N`` each
process writes its values to files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
``fraudstream serve`` before the processes start) and ``/metrics`` adds them up, so a
scrape that lands on any process sees them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from fraudstream.stream.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from fraudstream.models.scorer import Scorer

PREFIX = "fraudstream_http"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class HttpMetrics:
    request_seconds: Histogram
    stage_seconds: Histogram
    decisions: Counter
    degraded: Counter
    rejected: Counter
    rate_limited: Counter
    feature_store_up: Gauge
    feature_store_outages: Counter
    redis_errors: Counter
    model_info: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> HttpMetrics:
        """Metrics registered in ``registry`` (None: unregistered, for multiprocess mode,
        where ``exposition_registry`` reads them from their files)."""
        return cls(
            request_seconds=Histogram(
                f"{PREFIX}_request_duration_seconds",
                "Time from request to response, by route template and status code",
                ["route", "status"], buckets=LATENCY_BUCKETS, registry=registry),
            stage_seconds=Histogram(
                f"{PREFIX}_stage_seconds",
                "Time per scoring request in each stage (read, parse, features, score, "
                "encode)", ["stage"], buckets=LATENCY_BUCKETS, registry=registry),
            decisions=Counter(f"{PREFIX}_decisions", "Decisions returned, by outcome",
                              ["outcome"], registry=registry),
            degraded=Counter(f"{PREFIX}_degraded_decisions",
                             "Decisions made with a fallback (features, model)",
                             ["fallback"], registry=registry),
            rejected=Counter(f"{PREFIX}_rejected_requests",
                             "Requests refused before scoring, by reason (no_key, "
                             "unknown_key, revoked_key, rate_limited, too_large, invalid, "
                             "unsupported_media_type)", ["reason"], registry=registry),
            rate_limited=Counter(f"{PREFIX}_rate_limited_requests",
                                 "Requests refused with 429, by API key name", ["key"],
                                 registry=registry),
            feature_store_up=Gauge(f"{PREFIX}_feature_store_up",
                                   "1 while the feature store's circuit breaker is closed",
                                   registry=registry, multiprocess_mode="livemin"),
            feature_store_outages=Counter(f"{PREFIX}_feature_store_outages",
                                          "Times the feature store's circuit breaker opened",
                                          registry=registry),
            redis_errors=Counter(f"{PREFIX}_redis_errors",
                                 "Feature store calls that failed", registry=registry),
            model_info=Gauge(f"{PREFIX}_model_info",
                             "1 for the model being served (version, backend)",
                             ["version", "backend"], registry=registry,
                             multiprocess_mode="livemax"),
        )

    def model_swapped(self, old: Scorer, new: Scorer) -> None:
        """The served model changed (a promotion or rollback was followed)."""
        self.model_info.labels(old.version, old.backend).set(0)
        self.model_info.labels(new.version, new.backend).set(1)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def exposition_registry() -> tuple[CollectorRegistry, CollectorRegistry | None]:
    """(the registry /metrics serves, the one metrics are created in: None in
    multiprocess mode)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        # prometheus_client ships py.typed but leaves this __init__ unannotated.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # no stub
        return registry, None
    registry = CollectorRegistry()
    return registry, registry
