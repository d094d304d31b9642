"""Decide a batch: decoded transactions in, a decided batch out. Every runtime calls this:
the Kafka worker, the Faust agent, the HTTP scorer, ``score-file`` (``decide_matrix``)
and the benchmark peers; none re-implements a step.

1. Features: ONE feature-store read for the whole batch behind the circuit breaker. Any
   store error, or an open breaker, is an outage for this batch only: default features,
   ``degraded: ["features"]``, no state write.
2. Score: the model, or the rules when the model fails (``degraded: ["model"]``).
   Labels are applied here too (``apply_labels``), behind the same breaker.
3. The result is one value: scores, outcomes and reasons per event, the feature matrix,
   the pending state write (the runtime decides whether and when to send it), what was
   degraded, the model version, and the time each stage took.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from prometheus_client import Counter

from features.definitions import FEATURE_NAMES
from features.online import (
    FEATURES_DEGRADED,
    LabelBatch,
    OnlineFeatureStore,
    PendingUpdate,
    TransactionBatch,
    default_matrix,
)
from models.decisions import OUTCOMES
from models.rules import MODEL_DEGRADED, RULES_VERSION, RulesScorer, score_with_fallback
from models.scorer import ScoredBatch
from stream.circuit import CircuitBreaker
from stream.decisions import Decision
from stream.feature_store_guard import (
    FeatureStoreMetrics,
    feature_store_answered,
    feature_store_failed,
)

log = logging.getLogger("fraudstream.core")


class SupportsScore(Protocol):
    version: str

    def score(self, matrix: np.ndarray) -> ScoredBatch: ...


class CoreMetrics(FeatureStoreMetrics, Protocol):
    degraded: Counter


@dataclass(frozen=True)
class DecidedBatch:
    """A decided batch; ``update`` is the state write the runtime still has to send
    (None when the features were degraded), ``features_s`` and ``score_s`` the stages."""

    scores: list[float]
    codes: list[int]
    reasons: list[list[str]]
    matrix: np.ndarray
    update: PendingUpdate | None
    degraded: list[str]
    model_version: str
    features_s: float
    score_s: float

    def __len__(self) -> int:
        return len(self.scores)

    def decision(self, i: int, transaction_id: str, customer_id: str, scored_at_ms: int,
                 latency_ms: float, emit_features: bool = False) -> Decision:
        """Event ``i``'s decision event."""
        return Decision(
            transaction_id=transaction_id, customer_id=customer_id, score=self.scores[i],
            decision=OUTCOMES[self.codes[i]], model_version=self.model_version,
            reasons=self.reasons[i], degraded=self.degraded, scored_at=scored_at_ms,
            latency_ms=latency_ms,
            features=dict(zip(FEATURE_NAMES, self.matrix[i].tolist(), strict=True))
            if emit_features else None)

    def decisions(self, transaction_ids: Sequence[str], customer_ids: Sequence[str],
                  scored_at_ms: int, latency_ms: float) -> list[Decision]:
        return [self.decision(i, transaction_ids[i], customer_ids[i], scored_at_ms,
                              latency_ms) for i in range(len(self))]


def decide_matrix(scorer: SupportsScore, rules: RulesScorer, matrix: np.ndarray,
                  degraded: Sequence[str] = (), update: PendingUpdate | None = None,
                  features_s: float = 0.0) -> DecidedBatch:
    """Score ``matrix`` with ``scorer``, the rules deciding if the model fails."""
    began = time.perf_counter()
    scored, fell_back = score_with_fallback(scorer, rules, matrix)
    version, flags = scorer.version, list(degraded)
    if fell_back:
        version = RULES_VERSION
        flags.append(MODEL_DEGRADED)
    return DecidedBatch(np.asarray(scored.scores, dtype=np.float64).tolist(),
                        np.asarray(scored.codes).tolist(), scored.reasons, matrix, update,
                        flags, version, features_s, time.perf_counter() - began)


class DecisionCore:
    """The feature store behind its breaker, the rules fallback, and their metrics.
    Single-threaded, as the breaker is: one per worker, agent or server loop."""

    def __init__(self, features: OnlineFeatureStore, breaker: CircuitBreaker,
                 metrics: CoreMetrics, rules: RulesScorer | None = None) -> None:
        self.features = features
        self.breaker = breaker
        self.metrics = metrics
        self.rules = rules or RulesScorer()

    def decide(self, batch: TransactionBatch, scorer: SupportsScore) -> DecidedBatch:
        began = time.perf_counter()
        matrix, update = self.fetch(batch)
        degraded: list[str] = []
        if matrix is None:
            matrix = default_matrix(batch)
            degraded.append(FEATURES_DEGRADED)
        decided = decide_matrix(scorer, self.rules, matrix, degraded, update,
                                time.perf_counter() - began)
        for flag in decided.degraded:
            self.metrics.degraded.labels(flag).inc(len(batch))
        return decided

    def fetch(self, batch: TransactionBatch) -> tuple[np.ndarray | None, PendingUpdate | None]:
        """The batch's features and pending write, or (None, None) when the store is down
        (breaker open) or fails in any way."""
        if not self.breaker.allow():
            return None, None
        try:
            matrix, update = self.features.fetch(batch)
        except Exception as exc:  # any store error is an outage for this batch
            feature_store_failed(self.breaker, self.metrics, log, exc,
                                 "scoring on default features")
            return None, None
        feature_store_answered(self.breaker, self.metrics, log)
        return matrix, update

    def apply_labels(self, labels: LabelBatch) -> collections.Counter[str] | None:
        """Count the batch's confirmed frauds into terminal state behind the breaker;
        None when the store is down. A batch that needed no Redis call (no frauds in it)
        proves nothing about Redis: it never closes the breaker."""
        if not self.breaker.allow():
            return None
        calls = self.features.calls
        try:
            outcomes = self.features.apply_labels(labels)
        except Exception as exc:  # any store error is an outage, never a crash
            feature_store_failed(self.breaker, self.metrics, log, exc, "labels not applied")
            return None
        if self.features.calls != calls:
            feature_store_answered(self.breaker, self.metrics, log)
        else:
            self.breaker.release_probe()
        return outcomes
