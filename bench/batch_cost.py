"""The cost of deciding one batch, in process against the real Redis: the fixed cost (a
batch of one) and the per-event cost of a large batch, stage by stage (fetch, score and
the start of the state write), medians over many batches.

The batches come from a simulated stream, in order, so the state in Redis is the one a
worker would hold; every batch goes through ``DecisionCore``, as in the worker.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import RedisStateStore
from fraudstream.models.scorer import Scorer
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.metrics import WorkerMetrics

SIZES = (1, 16, 64, 512)
FIXED_COST_SIZE, LARGE_SIZE = 1, 512


@dataclass(frozen=True)
class BatchCost:
    size: int
    fetch_us: float
    score_us: float
    update_us: float
    total_us: float

    @property
    def per_event_us(self) -> float:
        return self.total_us / self.size


class _Stream:
    """The frame's events as consecutive batches, one partition, offsets in order."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.customers = frame["customer_id"].astype(str).tolist()
        self.terminals = frame["terminal_id"].astype(str).tolist()
        self.timestamps = frame["timestamp"].to_numpy(np.int64)
        self.amounts = frame["amount"].to_numpy(np.float64)
        self.transaction_ids = frame["transaction_id"].astype(str).tolist()  # as a worker has
        self.at = 0

    def left(self) -> int:
        return len(self.customers) - self.at

    def take(self, size: int) -> TransactionBatch:
        a, b = self.at, self.at + size
        self.at = b
        return TransactionBatch(self.customers[a:b], self.terminals[a:b],
                                self.timestamps[a:b], self.amounts[a:b],
                                np.zeros(b - a, np.int64), np.arange(a, b, dtype=np.int64),
                                self.transaction_ids[a:b])


def measure_batch_costs(redis_url: str, scorer: Scorer, frame: pd.DataFrame,
                        sizes: Sequence[int] = SIZES, batches: int = 200,
                        warm_events: int = 20_000) -> list[BatchCost]:
    """Median stage times of ``batches`` batches of each size (fewer for the large ones
    when the frame runs out), after ``warm_events`` events have filled the state."""
    store = RedisStateStore.from_url(redis_url)
    # Keys of this run's own, with a TTL like every feature key: nothing else is touched.
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    core = DecisionCore(OnlineFeatureStore(store, prefix, ttl_days=1), CircuitBreaker(5, 1.0),
                        WorkerMetrics.create(CollectorRegistry()))
    stream = _Stream(frame)
    _run(core, scorer, stream, 512, warm_events // 512)
    results = []
    for size in sizes:
        count = min(batches, max(5, (stream.left() // len(sizes)) // size))
        samples = _run(core, scorer, stream, size, count)
        results.append(BatchCost(size, *(statistics.median(s[k] for s in samples)
                                          for k in range(4))))
    core.complete()
    store.close()
    return results


def _run(core: DecisionCore, scorer: Scorer, stream: _Stream, size: int,
         count: int) -> list[tuple[float, float, float, float]]:
    samples = []
    for _ in range(count):
        if stream.left() < size:
            break
        batch = stream.take(size)
        decided = core.decide(batch, scorer)
        began = time.perf_counter()
        if decided.update is not None:
            core.write(decided.update, batch)
        update = time.perf_counter() - began
        if decided.degraded:
            raise RuntimeError(f"batch decided degraded ({decided.degraded}): is Redis up?")
        fetch, score = decided.features_s, decided.score_s
        samples.append((fetch * 1e6, score * 1e6, update * 1e6,
                        (fetch + score + update) * 1e6))
    return samples
