"""Worker metrics in one typed container, created against an injected registry."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

# Sized for a 1 ms per-event budget: fine below it, coarse above.
LATENCY_BUCKETS: tuple[float, ...] = (
    50e-6, 100e-6, 150e-6, 200e-6, 300e-6, 400e-6, 500e-6, 600e-6, 750e-6, 900e-6, 1e-3,
    1.25e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0,
)
END_TO_END_BUCKETS: tuple[float, ...] = (
    1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class WeightedHistogram(Collector):
    """A histogram that takes one observation for many events at once.

    Every event of a batch waits the same in-worker time; observing it once per event
    through prometheus_client would cost a Python call per event on the hot path."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._doc = documentation
        self._upper = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, weight: int = 1) -> None:
        slot = int(np.searchsorted(self._upper, value, side="left"))
        with self._lock:
            self._counts[slot] += weight
            self._sum += value * weight

    def observe_many(self, values: np.ndarray) -> None:
        slots = np.searchsorted(self._upper, values, side="left")
        counts = np.bincount(slots, minlength=self._counts.size)
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts = np.cumsum(self._counts).tolist()
            total = self._sum
        buckets = [(repr(float(b)), c) for b, c in zip(self._upper, counts, strict=False)]
        buckets.append(("+Inf", counts[-1]))
        family = HistogramMetricFamily(self._name, self._doc)
        family.add_metric([], buckets, sum_value=total)
        yield family


@dataclass(frozen=True)
class WorkerMetrics:
    stage_seconds: Histogram
    event_seconds: WeightedHistogram
    end_to_end_seconds: WeightedHistogram
    batch_size: Histogram
    events: Counter
    decisions: Counter
    dead_letters: Counter
    degraded: Counter
    budget_misses: Counter
    feature_conflicts: Counter
    feature_conflicts_unresolved: Counter
    feature_state_unreadable: Counter
    state_backlog_events: Gauge
    offset_resets: Counter
    state_backlog_age: Gauge
    feature_state_lost: Gauge
    duplicate_transactions: Counter
    foreign_keys: Counter
    topic_recreations: Counter
    feature_state_losses: Counter
    labels: Counter
    model_info: Info
    assigned_partitions: Gauge
    transactions: Counter
    transaction_seconds: Histogram
    feature_store_up: Gauge
    feature_store_outages: Counter
    consumption_paused: Gauge
    consumer_lag: Gauge
    redis_errors: Counter
    broker_errors: Counter
    feature_psi: Gauge
    model_swaps: Counter
    model_loads: Counter
    shadow_events: Counter
    shadow_seconds: Histogram
    shadow_disagreements: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str = "fraudstream") -> WorkerMetrics:
        event_seconds = WeightedHistogram(
            f"{prefix}_event_latency_seconds",
            "In-worker latency per event, decode to produce", LATENCY_BUCKETS)
        end_to_end = WeightedHistogram(
            f"{prefix}_end_to_end_latency_seconds",
            "Event produce time (Kafka timestamp) to decision produced", END_TO_END_BUCKETS)
        registry.register(event_seconds)
        registry.register(end_to_end)
        return cls(
            stage_seconds=Histogram(f"{prefix}_stage_latency_seconds",
                                    "Time per batch in each stage", ["stage"],
                                    buckets=LATENCY_BUCKETS, registry=registry),
            event_seconds=event_seconds,
            end_to_end_seconds=end_to_end,
            batch_size=Histogram(f"{prefix}_batch_size", "Events per batch",
                                 buckets=(1, 5, 10, 25, 50, 100, 200, 500, 1000, 2000),
                                 registry=registry),
            events=Counter(f"{prefix}_events", "Input messages consumed",
                           registry=registry),
            decisions=Counter(f"{prefix}_decisions", "Decisions produced", ["outcome"],
                              registry=registry),
            dead_letters=Counter(f"{prefix}_dead_letters", "Messages sent to the DLQ",
                                 ["topic"], registry=registry),
            degraded=Counter(f"{prefix}_degraded_decisions",
                             "Decisions marked degraded, by why: features, model (rules), "
                             "state_lost, replay", ["fallback"],
                             registry=registry),
            budget_misses=Counter(f"{prefix}_budget_misses",
                                  "Events whose in-worker latency exceeded the budget",
                                  registry=registry),
            feature_conflicts=Counter(f"{prefix}_feature_state_conflicts",
                                      "Feature state writes retried after a concurrent write",
                                      registry=registry),
            feature_conflicts_unresolved=Counter(
                f"{prefix}_feature_state_conflicts_unresolved",
                "Feature state writes still conflicting after the batch's retries (kept "
                "and written with the next batch)", registry=registry),
            offset_resets=Counter(
                f"{prefix}_offset_resets", "Partitions that started over at "
                "auto.offset.reset because their committed offset was gone (retention, a "
                "recreated topic)", registry=registry),
            state_backlog_events=Gauge(
                f"{prefix}_state_backlog_events", "Events and labels decided but not yet "
                "counted into the feature state (the store was down), kept in order",
                registry=registry),
            state_backlog_age=Gauge(
                f"{prefix}_state_backlog_age_seconds", "Age of the oldest entry of the "
                "state backlog (0 when empty)", registry=registry),
            feature_state_lost=Gauge(
                f"{prefix}_feature_state_lost", "1 while the feature state is known to be "
                "incomplete (Redis lost data; decisions flagged degraded state_lost) until a "
                "backfill rebuilds it", registry=registry),
            feature_state_losses=Counter(
                f"{prefix}_feature_state_losses", "Losses of feature state this worker "
                "found by the state's epoch, by kind (missing, replaced, rolled_back)",
                ["kind"], registry=registry),
            duplicate_transactions=Counter(
                f"{prefix}_duplicate_transactions", "Events whose transaction_id its "
                "customer's last transactions already hold (produced twice): not counted "
                "again, their decisions marked degraded duplicate", registry=registry),
            foreign_keys=Counter(
                f"{prefix}_events_not_keyed_by_customer", "Transactions whose Kafka key is "
                "not their customer id: that customer's events may arrive on two partitions",
                registry=registry),
            topic_recreations=Counter(
                f"{prefix}_topic_recreations", "Times this worker found the transactions "
                "topic recreated (a new topic id): its events are then guarded as a new "
                "generation", registry=registry),
            feature_state_unreadable=Counter(
                f"{prefix}_feature_state_unreadable",
                "Stored feature state values that could not be parsed (another format "
                "version, foreign bytes), treated as absent", ["prefix"], registry=registry),
            labels=Counter(f"{prefix}_labels", "Confirmed labels by what became of them "
                           "(applied, legit, duplicate, unknown, too_old, unavailable)",
                           ["outcome"], registry=registry),
            model_info=Info(f"{prefix}_model", "The model being scored", registry=registry),
            assigned_partitions=Gauge(f"{prefix}_assigned_partitions",
                                      "Partitions assigned to this worker", registry=registry),
            transactions=Counter(f"{prefix}_transactions",
                                 "Exactly-once transactions ended, by outcome (committed, "
                                 "aborted)", ["outcome"], registry=registry),
            transaction_seconds=Histogram(f"{prefix}_transaction_commit_seconds",
                                          "Time to send offsets and commit a transaction",
                                          buckets=LATENCY_BUCKETS, registry=registry),
            feature_store_up=Gauge(f"{prefix}_feature_store_up",
                                   "1 while the feature store's circuit breaker is closed",
                                   registry=registry),
            feature_store_outages=Counter(f"{prefix}_feature_store_outages",
                                          "Times the feature store's circuit breaker opened",
                                          registry=registry),
            consumption_paused=Gauge(f"{prefix}_consumption_paused",
                                     "1 while consumption waits for decisions to be delivered",
                                     registry=registry),
            consumer_lag=Gauge(f"{prefix}_consumer_lag",
                               "Events behind the high watermark, per assigned partition",
                               ["topic", "partition"], registry=registry),
            redis_errors=Counter(f"{prefix}_redis_errors", "Feature store calls that failed",
                                 registry=registry),
            broker_errors=Counter(f"{prefix}_broker_errors",
                                  "Errors reported by the Kafka client, by code", ["code"],
                                  registry=registry),
            feature_psi=Gauge(f"{prefix}_feature_psi",
                              "Population stability index of each feature over the recent "
                              "window against the training baseline", ["feature"],
                              registry=registry),
            model_swaps=Counter(f"{prefix}_model_swaps",
                                "Times the worker switched models between batches",
                                registry=registry),
            model_loads=Counter(f"{prefix}_model_loads",
                                "Models loaded after a registry change, by role (champion, "
                                "challenger) and outcome (loaded, failed)",
                                ["role", "outcome"], registry=registry),
            shadow_events=Counter(f"{prefix}_shadow_events",
                                  "Events offered to the challenger, by outcome (scored, "
                                  "skipped: over its time share, failed, undelivered)",
                                  ["outcome"], registry=registry),
            shadow_seconds=Histogram(f"{prefix}_shadow_latency_seconds",
                                     "Challenger scoring and publishing time per batch "
                                     "(outside the in-worker latency)",
                                     buckets=LATENCY_BUCKETS, registry=registry),
            shadow_disagreements=Counter(f"{prefix}_shadow_disagreements",
                                         "Events the challenger decided otherwise than the "
                                         "champion", registry=registry),
        )


@dataclass(frozen=True)
class QualityMetrics:
    """Exported by ``fraudstream monitor``, which joins decisions with labels."""

    quality: Gauge
    labelled: Gauge
    unmatched_labels: Gauge
    model_quality: Gauge
    model_labelled: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str = "fraudstream") -> QualityMetrics:
        return cls(
            quality=Gauge(f"{prefix}_live_quality",
                          "Precision, recall and average precision of recent decisions "
                          "against confirmed labels", ["measure"], registry=registry),
            labelled=Gauge(f"{prefix}_live_labelled",
                           "Labelled decisions in the live quality window", registry=registry),
            unmatched_labels=Gauge(f"{prefix}_live_unmatched_labels",
                                   "Labels whose decision the monitor had not seen",
                                   registry=registry),
            model_quality=Gauge(f"{prefix}_live_model_quality",
                                "Live precision, recall and average precision per model "
                                "version", ["version", "measure"], registry=registry),
            model_labelled=Gauge(f"{prefix}_live_model_labelled",
                                 "Labelled decisions in the live window per model version",
                                 ["version"], registry=registry),
        )
