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
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from prometheus_client import Counter

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.online import (
    FEATURES_DEGRADED,
    REPLAY,
    LabelBatch,
    OnlineFeatureStore,
    PendingUpdate,
    TransactionBatch,
    default_matrix,
)
from fraudstream.features.recent_ids import DUPLICATE
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.rules import MODEL_DEGRADED, RULES_VERSION, RulesScorer, score_with_fallback
from fraudstream.models.scorer import ScoredBatch
from fraudstream.stream.circuit import HALF_OPEN, CircuitBreaker
from fraudstream.stream.decisions import Decision, encode_decision
from fraudstream.stream.feature_store_guard import (
    FeatureStoreMetrics,
    feature_store_answered,
    feature_store_failed,
)
from fraudstream.stream.state_backlog import StateBacklog, Written
from fraudstream.stream.state_epoch import STATE_LOST, EpochWatch

log = logging.getLogger(__name__)


class SupportsScore(Protocol):
    version: str

    def score(self, matrix: np.ndarray) -> ScoredBatch: ...


class CoreMetrics(FeatureStoreMetrics, Protocol):
    @property
    def degraded(self) -> Counter: ...


# Slots, not frozen: a frozen dataclass's __init__ costs about 5 us, every batch.
@dataclass(slots=True)
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
    duplicates: frozenset[int] = frozenset()  # events marked degraded "duplicate"
    replays: frozenset[int] = frozenset()  # events marked degraded "replay"

    def __len__(self) -> int:
        return len(self.scores)

    def _degraded(self, i: int) -> list[str]:
        """The batch's flags, and event ``i``'s own: a duplicate, a stale replay."""
        if i not in self.duplicates and i not in self.replays:
            return self.degraded
        return [*self.degraded, *([DUPLICATE] if i in self.duplicates else []),
                *([REPLAY] if i in self.replays else [])]

    def decision(self, i: int, transaction_id: str, customer_id: str, scored_at_ms: int,
                 latency_ms: float, emit_features: bool = False) -> Decision:
        """Event ``i``'s decision event."""
        return Decision(
            transaction_id=transaction_id, customer_id=customer_id, score=self.scores[i],
            decision=OUTCOMES[self.codes[i]], model_version=self.model_version,
            reasons=self.reasons[i],
            degraded=self._degraded(i),
            scored_at=scored_at_ms,
            latency_ms=latency_ms,
            features=dict(zip(FEATURE_NAMES, self.matrix[i].tolist(), strict=True))
            if emit_features else None)

    def decisions(self, transaction_ids: Sequence[str], customer_ids: Sequence[str],
                  scored_at_ms: int, latency_ms: float) -> list[Decision]:
        return [self.decision(i, transaction_ids[i], customer_ids[i], scored_at_ms,
                              latency_ms) for i in range(len(self))]

    def encoded(self, transaction_ids: Sequence[str], customer_ids: Sequence[str],
                scored_at_ms: int, started: float, emit_features: bool = False,
                ) -> list[bytes]:
        """Every decision event as JSON, in order; each one's ``latency_ms`` runs from
        ``started`` (a ``time.perf_counter`` reading: the batch's decode) to its encoding,
        right before the batch's decisions go to the producer."""
        if emit_features:
            return [encode_decision(self.decision(
                i, transaction_ids[i], customer_ids[i], scored_at_ms,
                _ms_since(started), True)) for i in range(len(self))]
        clock, encode, outcomes = time.perf_counter, encode_decision, OUTCOMES
        version, flags, marked = self.model_version, self.degraded, \
            self.duplicates | self.replays
        return [encode(Decision(
            transaction_ids[i], customer_ids[i], score, outcomes[code], version, reasons,
            flags if i not in marked else self._degraded(i), scored_at_ms,
            int((clock() - started) * 1e6 + 0.5) / 1000.0))
            for i, (score, code, reasons) in enumerate(zip(
                self.scores, self.codes, self.reasons, strict=True))]


def _ms_since(started: float) -> float:
    """Milliseconds since the ``time.perf_counter`` reading ``started``, to 1 us."""
    return int((time.perf_counter() - started) * 1e6 + 0.5) / 1000.0


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
    Single-threaded, as the breaker is: one per worker, agent or server loop.

    State work the store cannot take (a batch decided on default features, labels while
    it is down, a write whose reply never came) goes to ``backlog`` in order and is
    applied first when the store answers again; ``on_written`` says when each batch's
    events are in the store.

    With an ``epoch`` watch, a store that answers again after an outage has its epoch
    checked before anything reads it, and while the state is known to be incomplete
    every decision says ``degraded: ["state_lost"]``."""

    def __init__(self, features: OnlineFeatureStore, breaker: CircuitBreaker,
                 metrics: CoreMetrics, rules: RulesScorer | None = None,
                 epoch: EpochWatch | None = None) -> None:
        self.features = features
        self.breaker = breaker
        self.metrics = metrics
        self.rules = rules or RulesScorer()
        self.epoch = epoch
        self.backlog = StateBacklog()
        self._in_flight: tuple[TransactionBatch, Written | None] | None = None

    @property
    def settled(self) -> bool:
        """Every state write sent so far is confirmed in the store, none is waiting."""
        return self._in_flight is None and not self.backlog

    def decide(self, batch: TransactionBatch, scorer: SupportsScore,
               on_written: Written | None = None, writes: bool = True) -> DecidedBatch:
        """``writes=False`` (the HTTP scorer): the batch is never counted into the
        state, so a degraded one is not kept for later either."""
        began = time.perf_counter()
        matrix, update = self.fetch(batch)
        degraded: list[str] = []
        if matrix is None:
            matrix = default_matrix(batch)
            degraded.append(FEATURES_DEGRADED)
            if writes:
                self.backlog.add(batch, on_written)
        if self.epoch is not None and self.epoch.lost:
            degraded.append(STATE_LOST)
        decided = decide_matrix(scorer, self.rules, matrix, degraded, update,
                                time.perf_counter() - began)
        if update is not None and (update.duplicates or update.replays):
            decided = dataclasses.replace(decided, duplicates=frozenset(update.duplicates),
                                          replays=frozenset(update.replays))
            if update.replays:
                self.metrics.degraded.labels(REPLAY).inc(len(update.replays))
        for flag in decided.degraded:
            self.metrics.degraded.labels(flag).inc(len(batch))
        return decided

    def fetch(self, batch: TransactionBatch) -> tuple[np.ndarray | None, PendingUpdate | None]:
        """The batch's features and pending write, or (None, None) when the store is down
        (breaker open) or fails in any way. The backlog is applied first."""
        if not self.breaker.allow():
            return None, None
        try:
            self._probe_epoch()
            self.backlog.flush(self.features)
            matrix, update = self.features.fetch(batch)
        except Exception as exc:  # any store error is an outage for this batch
            self._store_failed(exc, "scoring on default features")
            return None, None
        feature_store_answered(self.breaker, self.metrics, log)
        self._confirm_in_flight()  # its reply came back with this read
        return matrix, update

    def write(self, update: PendingUpdate, batch: TransactionBatch,
              on_written: Written | None = None) -> None:
        """Send the batch's state write; its reply is read with the next read (or by
        ``complete``). A write that cannot be sent goes to the backlog."""
        try:
            self.features.begin_update(update)
        except Exception as exc:
            self._store_failed(exc, "state write kept for later")
            self.backlog.add(batch, on_written)
            return
        self._in_flight = (batch, on_written)

    def complete(self) -> None:
        """Wait for the write in flight (on revoke and shutdown), and apply the backlog
        if the store answers."""
        if self._in_flight is None and not self.backlog:
            return
        try:
            self.features.complete_update()
            self._confirm_in_flight()
            if self.backlog and self.breaker.allow():
                self._probe_epoch()
                self.backlog.flush(self.features)
                feature_store_answered(self.breaker, self.metrics, log)
        except Exception as exc:
            self._store_failed(exc, "state writes kept for later")

    def retry_backlog(self) -> None:
        """Between polls: apply the backlog when the breaker lets a call through, so a
        worker whose consumption is paused on it (no new batch to probe with) resumes."""
        if not self.backlog or not self.breaker.allow():
            return
        try:
            self._probe_epoch()
            self.backlog.flush(self.features)
        except Exception as exc:
            self._store_failed(exc, "state writes kept for later")
            return
        feature_store_answered(self.breaker, self.metrics, log)
        self._confirm_in_flight()

    def apply_labels(self, labels: LabelBatch, on_written: Written | None = None,
                     ) -> collections.Counter[str] | None:
        """Count the batch's confirmed frauds into terminal state behind the breaker;
        None when the store is down (the labels then wait in the backlog). A batch that
        needed no Redis call (no frauds in it) proves nothing about Redis: it never
        closes the breaker."""
        if not self.breaker.allow():
            self.backlog.add(labels, on_written)
            return None
        calls = self.features.calls
        try:
            self._probe_epoch()
            self.backlog.flush(self.features)
            outcomes = self.features.apply_labels(labels)
        except Exception as exc:  # any store error is an outage, never a crash
            self._store_failed(exc, "labels kept for later")
            self.backlog.add(labels, on_written)
            return None
        if self.features.calls != calls:
            feature_store_answered(self.breaker, self.metrics, log)
            self._confirm_in_flight()
        else:
            self.breaker.release_probe()
        if on_written is not None:
            on_written()
        return outcomes

    def check_epoch(self) -> None:
        """Between batches: check the state's epoch when it is due (see EpochWatch)."""
        if self.epoch is None or not self.epoch.due() or not self.breaker.allow():
            return
        try:
            self.epoch.check()
        except Exception as exc:
            self._store_failed(exc, "epoch checked again soon")
            return
        feature_store_answered(self.breaker, self.metrics, log)

    def _probe_epoch(self) -> None:
        """The breaker's probe after an outage: is the state that came back whole? Runs
        before the backlog or any batch touches it."""
        if self.epoch is not None and self.breaker.state == HALF_OPEN:
            self.epoch.check()

    def _store_failed(self, exc: Exception, consequence: str) -> None:
        feature_store_failed(self.breaker, self.metrics, log, exc, consequence)
        if self.epoch is not None:
            self.epoch.soon()
        if self._in_flight is not None:  # its write may not have landed: do it again
            batch, on_written = self._in_flight
            self._in_flight = None
            self.backlog.add_first(batch, on_written)

    def _confirm_in_flight(self) -> None:
        if self._in_flight is not None:
            _, on_written = self._in_flight
            self._in_flight = None
            if on_written is not None:
                on_written()
