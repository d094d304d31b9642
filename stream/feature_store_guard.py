"""What every scoring path does when the feature store fails or answers again: count it,
drive the circuit breaker, export its state and say so in the log, once per change."""

from __future__ import annotations

import logging
from typing import Protocol

from prometheus_client import Counter, Gauge

from fraudstream.stream.circuit import CircuitBreaker


class FeatureStoreMetrics(Protocol):
    # Read-only: the metrics objects are frozen dataclasses; only the series change.
    @property
    def redis_errors(self) -> Counter: ...

    @property
    def feature_store_up(self) -> Gauge: ...

    @property
    def feature_store_outages(self) -> Counter: ...


def feature_store_failed(breaker: CircuitBreaker, metrics: FeatureStoreMetrics,
                         log: logging.Logger, exc: Exception, consequence: str) -> None:
    """A call failed: ``consequence`` says what the caller does instead."""
    metrics.redis_errors.inc()
    if breaker.record_failure():
        metrics.feature_store_up.set(0)
        metrics.feature_store_outages.inc()
        log.warning("feature store unavailable (%s); circuit open, probing every %.1fs; %s",
                    exc, breaker.reset_after_s, consequence)
    elif breaker.state == "closed":
        log.warning("feature store call failed (%s); %s", exc, consequence)


def feature_store_answered(breaker: CircuitBreaker, metrics: FeatureStoreMetrics,
                           log: logging.Logger) -> None:
    if breaker.record_success():
        metrics.feature_store_up.set(1)
        log.info("feature store back after %.1fs; circuit closed",
                 breaker.recovered_after_s() or 0.0)
