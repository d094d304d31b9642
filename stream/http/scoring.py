"""Score a request's transactions as the stream worker would, without writing state.

The stream's own decision core (``stream.core.DecisionCore``): one
``OnlineFeatureStore.fetch`` for the whole request (one Redis round trip) behind the
circuit breaker, default features flagged ``degraded: ["features"]`` when Redis fails or
the breaker is open, the model with the rules fallback (``degraded: ["model"]``), the
model's thresholds, and the stream's ``Decision``.

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

from fraudstream.features.customer_state import NO_PARTITION
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.models.decisions import OUTCOMES
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.decisions import Decision
from fraudstream.stream.events import Transaction
from fraudstream.stream.http.metrics import HttpMetrics
from fraudstream.stream.http.model import ModelHolder

log = logging.getLogger(__name__)

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
        self.core = DecisionCore(features, breaker, metrics)

    def score(self, transactions: Sequence[Transaction], timestamps_ms: Sequence[int],
              started: float) -> Scored:
        """Decisions for ``transactions`` (in order); ``started`` is the perf_counter
        at which the request's handling began, for each decision's ``latency_ms``."""
        n = len(transactions)
        batch = TransactionBatch(
            [str(t.customer_id) for t in transactions],
            [str(t.terminal_id) for t in transactions],
            np.asarray(timestamps_ms, dtype=np.int64),
            np.fromiter((t.amount for t in transactions), np.float64, n),
            np.full(n, HTTP_PARTITION, dtype=np.int64), np.arange(n, dtype=np.int64))
        decided = self.core.decide(batch, self.model.current(), writes=False)
        now_ms = int(time.time() * 1000)
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        decisions = decided.decisions([str(t.transaction_id) for t in transactions],
                                      batch.customer_ids, now_ms, latency_ms)
        for code, count in enumerate(np.bincount(np.asarray(decided.codes, dtype=np.int64),
                                                 minlength=3).tolist()):
            if count:
                self.metrics.decisions.labels(OUTCOMES[code]).inc(count)
        return Scored(decisions, decided.model_version, decided.degraded,
                      decided.features_s, decided.score_s)
