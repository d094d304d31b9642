"""Scale a pool of worker replicas on consumer-group lag.

``ScalingPolicy`` is the decision alone (no I/O; time comes with each lag sample), so it is
tested on made-up lag. ``Autoscaler`` ties it to a ``LagObserver`` and a ``WorkerPool``.

The rules, after what goes wrong with lag-based autoscalers (KEDA issues):
- never more replicas than partitions (an extra consumer gets nothing), nor more than
  partitions with lag (``limitToPartitionsWithLag``);
- lag per replica, not total lag, against the target;
- up while the lag per replica is above target and growing; fast (short cooldown, up to
  ``max_step_up`` at a time);
- down only when the lag per replica stayed near zero for the whole (long) cooldown, one
  step at a time: every change costs a rebalance pause, and flapping doubles it;
- a partition whose committed offset does not move while it has lag is stuck; its lag is
  left out (``excludePersistentLag``): more replicas cannot unstick it;
- no change while the group rebalances: the pause of one scale-up grows the lag, and
  reading that as more load would add a replica per rebalance.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fraudstream.stream.lag import LagSample
from fraudstream.stream.status import WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    replicas: int  # wanted now
    reason: str
    lag: float  # lag that counts, smoothed over the trend window
    stuck: tuple[int, ...] = ()  # partitions whose lag was left out


@dataclass
class ScalingPolicy:
    max_replicas: int  # the partition count
    min_replicas: int = 1
    target_lag: int = 1000  # events per replica
    idle_ratio: float = 0.25  # lag per replica at most target * this counts as near zero
    up_cooldown_s: float = 5.0
    down_cooldown_s: float = 20.0
    max_step_up: int = 2
    max_step_down: int = 1
    trend_window_s: float = 3.0  # smoothing and slope of the lag
    stuck_after_s: float = 10.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque, init=False)
    _smoothed: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _last_change: float | None = field(default=None, init=False)
    _progress: dict[int, tuple[int | None, float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= min_replicas ({self.min_replicas}) <= max_replicas "
                             f"({self.max_replicas})")
        if self.target_lag < 1 or not 0 <= self.idle_ratio < 1:
            raise ValueError("need target_lag >= 1 and 0 <= idle_ratio < 1")
        if self.max_step_up < 1 or self.max_step_down < 1:
            raise ValueError("steps must be >= 1")

    def decide(self, sample: LagSample, replicas: int, rebalancing: bool = False) -> Decision:
        """The replica count wanted after ``sample``, with ``replicas`` running now;
        while ``rebalancing`` only the bounds are enforced."""
        now = sample.at
        if self._last_change is None:
            self._last_change = now  # starting counts as a change: no early scale-down
        stuck = self._stuck(sample)
        counted = [p for p in sample.partitions if p.partition not in stuck]
        lag = sum(p.lag for p in counted)
        with_lag = sum(1 for p in counted if p.lag > 0)
        smoothed, slope = self._record(now, lag, replicas)

        def hold(reason: str) -> Decision:
            return Decision(replicas, reason, smoothed, stuck)

        def change(wanted: int, reason: str) -> Decision:
            self._last_change = now
            return Decision(wanted, reason, smoothed, stuck)

        bounded = min(max(replicas, self.min_replicas), self.max_replicas)
        if bounded != replicas:
            return change(bounded, f"outside {self.min_replicas}..{self.max_replicas}")
        if rebalancing:
            return hold("waiting for the group to rebalance")
        per_replica = smoothed / replicas
        since_change = now - self._last_change
        if per_replica > self.target_lag and slope is not None and slope > 0:
            if since_change < self.up_cooldown_s:
                return hold("lag growing; scale-up cooldown")
            ceiling = min(self.max_replicas, max(self.min_replicas, with_lag))
            wanted = min(max(replicas + 1, math.ceil(smoothed / self.target_lag)),
                         replicas + self.max_step_up, ceiling)
            if wanted > replicas:
                return change(wanted, f"lag per replica {per_replica:,.0f} > "
                                      f"{self.target_lag:,} and growing")
            return hold("lag growing; as many replicas as partitions with lag")
        if replicas > self.min_replicas and since_change >= self.down_cooldown_s \
                and self._idle_since(now - self.down_cooldown_s):
            return change(max(self.min_replicas, replicas - self.max_step_down),
                          f"lag near zero for {self.down_cooldown_s:.0f} s")
        return hold("steady")

    # -- internals ---------------------------------------------------------------------

    def _stuck(self, sample: LagSample) -> tuple[int, ...]:
        stuck = []
        for p in sample.partitions:
            last = self._progress.get(p.partition)
            if last is None or last[0] != p.committed or p.lag == 0:
                self._progress[p.partition] = (p.committed, sample.at)
            elif sample.at - last[1] >= self.stuck_after_s:
                stuck.append(p.partition)
        return tuple(stuck)

    def _record(self, now: float, lag: int, replicas: int) -> tuple[float, float | None]:
        """Smoothed lag over the trend window and its slope (None until the window is
        covered well enough to tell a trend)."""
        self._samples.append((now, lag))
        while self._samples[0][0] < now - self.trend_window_s:
            self._samples.popleft()
        smoothed = sum(v for _, v in self._samples) / len(self._samples)
        self._smoothed.append((now, smoothed / max(replicas, 1)))
        while self._smoothed[0][0] < now - self.down_cooldown_s - self.trend_window_s:
            self._smoothed.popleft()
        covered = now - self._samples[0][0]
        if len(self._samples) < 2 or covered < self.trend_window_s / 2:
            return smoothed, None
        return smoothed, _slope(self._samples)

    def _idle_since(self, start: float) -> bool:
        idle = self.target_lag * self.idle_ratio
        window = [v for t, v in self._smoothed if t >= start]
        return bool(window) and all(v <= idle for v in window)


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope, per second."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


# -- the loop --------------------------------------------------------------------------


class Pool(Protocol):
    """What the autoscaler needs of a ``stream.supervisor.WorkerPool``."""

    def __len__(self) -> int: ...

    def scale_to(self, count: int) -> None: ...

    def supervise(self) -> object: ...

    def statuses(self) -> list[WorkerStatus | None]: ...


class Observer(Protocol):
    """What the autoscaler needs of a ``stream.lag.LagObserver``."""

    topic: str

    def sample(self, timeout: float = 5.0) -> LagSample | None: ...

    def drain(self) -> None: ...


@dataclass(frozen=True)
class ScalingEvent:
    at: float  # seconds since the autoscaler started
    before: int
    after: int
    lag: int  # total lag when it was decided
    reason: str


@dataclass(frozen=True)
class Point:
    """One measurement, for the live view and the plot."""

    at: float  # seconds since the autoscaler started
    replicas: int
    lag: int
    produced: int  # sum of high watermarks: the input rate is its slope


class Autoscaler:
    """Sample lag every ``interval_s``, ask the policy, scale the pool; call ``step()``
    often (it also reaps and restarts replicas that died).

    The group counts as rebalancing while a replica has no partition yet (a new one waits
    for the second round of a cooperative rebalance), for at most ``settle_timeout_s``."""

    def __init__(self, pool: Pool, observer: Observer, policy: ScalingPolicy,
                 interval_s: float = 0.5, settle_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool, self.observer, self.policy = pool, observer, policy
        self.interval_s = interval_s
        self.settle_timeout_s = settle_timeout_s
        self.clock = clock
        self.started = clock()
        self.points: list[Point] = []
        self.events: list[ScalingEvent] = []
        self.last_decision: Decision | None = None
        self._next = self.started

    def start(self) -> None:
        self.pool.scale_to(self.policy.min_replicas)

    def step(self) -> ScalingEvent | None:
        self.pool.supervise()
        self.observer.drain()
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.interval_s
        sample = self.observer.sample()
        if sample is None:
            return None
        replicas = len(self.pool)
        self.points.append(Point(now - self.started, replicas, sample.total, sample.produced))
        decision = self.policy.decide(sample, replicas, self._rebalancing(now))
        self.last_decision = decision
        if decision.replicas == replicas:
            return None
        event = ScalingEvent(now - self.started, replicas, decision.replicas, sample.total,
                             decision.reason)
        log.info("scaling %d -> %d replicas: %s (lag %d%s)", replicas, decision.replicas,
                 decision.reason, sample.total,
                 f"; stuck partitions {list(decision.stuck)}" if decision.stuck else "")
        self.pool.scale_to(decision.replicas)
        self.events.append(event)
        return event

    def _rebalancing(self, now: float) -> bool:
        since = self.events[-1].at if self.events else 0.0
        if now - self.started - since > self.settle_timeout_s:
            return False
        return any(status is None or not status.assigned for status in self.pool.statuses())
