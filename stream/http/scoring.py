"""Score a request's transactions as the stream worker would, without writing state.

Same steps as ``stream.worker.Worker._decide``: one ``OnlineFeatureStore.fetch`` for the
whole request (one Redis round trip) behind the circuit breaker, default features
flagged ``degraded: ["features"]`` when Redis fails or the breaker is open, the model
with the rules fallback (``degraded: ["model"]``), the model's thresholds, and the
stream's ``Decision``.

The HTTP path reads feature state and never writes it. The stream is the system of
record: its writes are guarded by Kafka offsets, so a replay never counts twice, and an
HTTP request has no offset. A transaction scored here therefore counts in its own
features (and the earlier ones of the same request count in the later ones) exactly as
if the stream were scoring it now, but it leaves no trace: a later request, or the
stream, does not see it unless it is also sent to the transactions topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from features.customer_state import NO_PARTITION
from features.online import (
    FEATURES_DEGRADED,
    OnlineFeatureStore,
    TransactionBatch,
    default_matrix,
)
from models.decisions import OUTCOMES
from models.rules import MODEL_DEGRADED, RULES_VERSION, RulesScorer, score_with_fallback
from stream.circuit import CircuitBreaker
from stream.decisions import Decision
from stream.events import Transaction
from stream.feature_store_guard import feature_store_answered, feature_store_failed
from stream.http.metrics import HttpMetrics
from stream.http.model import ModelHolder

log = logging.getLogger("fraudstream.http")

# The (partition, offset) the feature engine applies a request's transactions under.
# The stream's partitions are stored below NO_PARTITION, so no stored state can take an
# HTTP transaction for one it has already counted; offsets 0..n-1 keep the request's
# own transactions in order.
HTTP_PARTITION = NO_PARTITION - 1


@dataclass(frozen=True)
class Scored:
    decisions: list[Decision]
    model_version: str
    degraded: list[str]
    features_s: float
    score_s: float


class RequestScorer:
    """Not thread-safe (nor is the breaker): the server calls it from its event loop."""

    def __init__(self, model: ModelHolder, features: OnlineFeatureStore,
                 breaker: CircuitBreaker, metrics: HttpMetrics) -> None:
        self.model = model
        self.features = features
        self.breaker = breaker
        self.metrics = metrics
        self.rules = RulesScorer()

    def score(self, transactions: Sequence[Transaction], timestamps_ms: Sequence[int],
              started: float) -> Scored:
        """Decisions for ``transactions`` (in order); ``started`` is the perf_counter
        at which the request's handling began, for each decision's ``latency_ms``."""
        n = len(transactions)
        batch = TransactionBatch(
            [t.customer_id for t in transactions],  # type: ignore[misc]
            [t.terminal_id for t in transactions],  # type: ignore[misc]
            np.asarray(timestamps_ms, dtype=np.int64),
            np.fromiter((t.amount for t in transactions), np.float64, n),
            np.full(n, HTTP_PARTITION, dtype=np.int64), np.arange(n, dtype=np.int64))
        began = time.perf_counter()
        degraded: list[str] = []
        matrix = self._fetch(batch)
        if matrix is None:
            matrix = default_matrix(batch)
            degraded.append(FEATURES_DEGRADED)
            self.metrics.degraded.labels(FEATURES_DEGRADED).inc(n)
        fetched = time.perf_counter()
        scorer = self.model.current()
        scored, fell_back = score_with_fallback(scorer, self.rules, matrix)
        version = scorer.version
        if fell_back:
            version = RULES_VERSION
            degraded.append(MODEL_DEGRADED)
            self.metrics.degraded.labels(MODEL_DEGRADED).inc(n)
        done = time.perf_counter()
        now_ms = int(time.time() * 1000)
        latency_ms = round((done - started) * 1000.0, 3)
        codes = scored.codes.tolist()
        scores = scored.scores.tolist()
        decisions = [
            Decision(transaction_id=t.transaction_id, customer_id=batch.customer_ids[i],
                     score=scores[i], decision=OUTCOMES[codes[i]], model_version=version,
                     reasons=scored.reasons[i], degraded=degraded, scored_at=now_ms,
                     latency_ms=latency_ms)  # type: ignore[arg-type]
            for i, t in enumerate(transactions)]
        for code, count in enumerate(np.bincount(np.asarray(codes, dtype=np.int64),
                                                 minlength=3).tolist()):
            if count:
                self.metrics.decisions.labels(OUTCOMES[code]).inc(count)
        return Scored(decisions, version, degraded, fetched - began, done - fetched)

    def _fetch(self, batch: TransactionBatch) -> np.ndarray | None:
        if not self.breaker.allow():
            return None
        try:
            matrix, _pending = self.features.fetch(batch)  # the writes are dropped
        except redis.RedisError as exc:
            feature_store_failed(self.breaker, self.metrics, log, exc,
                                 "scoring on default features")
            return None
        feature_store_answered(self.breaker, self.metrics, log)
        return matrix
