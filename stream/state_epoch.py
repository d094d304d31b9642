"""When to check the feature state's epoch (features.epoch), and what a loss changes.

A check costs two Redis round trips, so it never runs per batch: at start, every
``interval_s``, at once after any failed feature-store call (a restart shows first as a
broken connection), and as the probe of a breaker that was open, before the first batch
reads the state that came back. A loss is counted (``feature_state_losses{kind}``),
logged once, exported (``feature_state_lost`` 1) and shown in readiness. The worker keeps
deciding on the incomplete state, every decision flagged ``degraded: ["state_lost"]``,
until a backfill rebuilds the state and calls ``features.epoch.mark_rebuilt``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge

from fraudstream.features.epoch import LOSS_KINDS, StateEpoch

log = logging.getLogger(__name__)

STATE_LOST = "state_lost"  # a decision's ``degraded`` entry while the state is incomplete
RETRY_S = 0.5  # a check that failed is tried again this soon


class EpochMetrics(Protocol):
    @property
    def feature_state_lost(self) -> Gauge: ...

    @property
    def feature_state_losses(self) -> Counter: ...


class EpochWatch:
    """``lost`` says why the state is incomplete ("" while it is whole)."""

    def __init__(self, epoch: StateEpoch, metrics: EpochMetrics, interval_s: float,
                 expect_state: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._epoch = epoch
        self._metrics = metrics
        self._interval_s = interval_s
        self._expect_state = expect_state
        self._expected: bool | None = None  # asked once, at the first check
        self._clock = clock
        self._due = 0.0  # the first check runs at once
        self.lost = ""
        metrics.feature_state_lost.set(0)
        for kind in LOSS_KINDS:  # series at 0, so the first loss alerts
            metrics.feature_state_losses.labels(kind)

    def due(self) -> bool:
        return self._clock() >= self._due

    def soon(self) -> None:
        """A feature-store call failed: check before long (Redis may have restarted)."""
        self._due = min(self._due, self._clock() + RETRY_S)

    def check(self) -> None:
        """Check now; raises the store's errors (then checks again soon)."""
        self._due = self._clock() + RETRY_S
        if self._expected is None:
            self._expected = self._expect_state()
        reading = self._epoch.check(self._expected)
        self._due = self._clock() + self._interval_s
        if reading.found is not None:
            self._metrics.feature_state_losses.labels(reading.found.kind).inc()
            log.error("feature state lost: %s; deciding on, every decision flagged "
                      "degraded %s, until a backfill rebuilds it", reading.found.reason,
                      STATE_LOST)
        if reading.lost == self.lost:
            return
        if reading.lost and reading.found is None:
            log.error("feature state lost (found by another worker): %s; decisions flagged "
                      "degraded %s until a backfill rebuilds it", reading.lost, STATE_LOST)
        elif not reading.lost:
            log.info("feature state rebuilt (epoch %s): decisions no longer flagged",
                     reading.epoch)
        self.lost = reading.lost
        self._metrics.feature_state_lost.set(1 if reading.lost else 0)
