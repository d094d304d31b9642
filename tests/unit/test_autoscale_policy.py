"""The scaling policy on made-up lag: bounds, cooldowns, noise, a stuck partition."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from fraudstream.stream.autoscale import Autoscaler, ScalingPolicy
from fraudstream.stream.lag import LagSample, PartitionLag
from fraudstream.stream.status import WorkerStatus

PARTITIONS = 4
TARGET = 1000

# seconds -> lag per partition; partitions listed in ``stuck`` never commit
LagCurve = Callable[[float], dict[int, int]]


def sample(at: float, lags: dict[int, int], stuck: frozenset[int] = frozenset()) -> LagSample:
    """Healthy partitions commit as time goes on; stuck ones stay at offset 100."""
    parts = []
    for p in range(PARTITIONS):
        committed = 100 if p in stuck else 100 + int(at * 1000)
        parts.append(PartitionLag(p, committed + lags.get(p, 0), committed))
    return LagSample(at, tuple(parts))


def spread(total: float) -> dict[int, int]:
    return {p: int(total / PARTITIONS) for p in range(PARTITIONS)}


def run(policy: ScalingPolicy, curve: LagCurve, seconds: float, replicas: int = 1,
        stuck: frozenset[int] = frozenset()) -> list[tuple[float, int]]:
    """One sample a second; returns (time, replicas after the decision) per sample."""
    timeline = []
    for t in range(int(seconds)):
        replicas = policy.decide(sample(float(t), curve(float(t)), stuck), replicas).replicas
        timeline.append((float(t), replicas))
    return timeline


def changes(timeline: list[tuple[float, int]]) -> list[tuple[float, int, int]]:
    found, before = [], None
    for t, replicas in timeline:
        if before is not None and replicas != before:
            found.append((t, before, replicas))
        before = replicas
    return found


def policy(**overrides: float) -> ScalingPolicy:
    return ScalingPolicy(**{"max_replicas": PARTITIONS, "target_lag": TARGET, **overrides})


def test_scales_up_while_lag_per_replica_exceeds_target_and_grows() -> None:
    timeline = run(policy(), lambda t: spread(300 * t), 60)
    ups = changes(timeline)
    assert ups, "growing lag never added a replica"
    first_at, before, after = ups[0]
    assert (before, after) == (1, 2)
    assert first_at >= TARGET / 300, "scaled before the lag per replica passed the target"
    assert all(after > before for _, before, after in ups)


def test_never_more_replicas_than_partitions() -> None:
    timeline = run(policy(), lambda t: spread(50_000 * t), 600)
    assert max(r for _, r in timeline) == PARTITIONS
    # far too much lag still adds at most max_step_up at a time
    assert all(after - before <= 2 for _, before, after in changes(timeline))


def test_never_fewer_than_min_replicas() -> None:
    timeline = run(policy(min_replicas=2), lambda t: {}, 300, replicas=4)
    assert min(r for _, r in timeline) == 2
    assert timeline[-1][1] == 2
    # a pool below its minimum is brought up at once
    assert run(policy(min_replicas=2), lambda t: {}, 1, replicas=0)[0][1] == 2


def test_lag_per_replica_counts_not_total_lag() -> None:
    """Three targets of lag across four replicas is below target per replica."""
    timeline = run(policy(), lambda t: spread(3 * TARGET + t), 120, replicas=4)
    assert changes(timeline) == []


def test_scale_up_cooldown_and_step_limit() -> None:
    timeline = run(policy(up_cooldown_s=5, max_step_up=1), lambda t: spread(2000 * t), 60)
    ups = changes(timeline)
    assert len(ups) >= 2
    assert all(after - before == 1 for _, before, after in ups)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ups)]
    assert min(gaps) >= 5


def test_scale_down_only_after_lag_stayed_near_zero_for_the_whole_cooldown() -> None:
    # busy for 30 s (3 replicas hold it, just), then quiet: one replica less per 20 s
    timeline = run(policy(), lambda t: spread(2.5 * TARGET if t < 30 else 0), 120,
                   replicas=3)
    downs = changes(timeline)
    assert [(before, after) for _, before, after in downs] == [(3, 2), (2, 1)]
    assert downs[0][0] >= 30 + 20 - 3, "down before the lag was near zero for 20 s"
    assert downs[1][0] - downs[0][0] >= 20


def test_one_busy_moment_restarts_the_scale_down_wait() -> None:
    def curve(t: float) -> dict[int, int]:
        # at 30-31 s: below the target for two replicas, but not near zero
        return spread(1.5 * TARGET if 30 <= t < 32 else 0)

    downs = changes(run(policy(), curve, 90, replicas=3))
    assert [(before, after) for _, before, after in downs] == [(3, 2), (2, 1)]
    assert downs[0][0] == 20  # quiet from the start: one full cooldown
    assert downs[1][0] >= 31 + 20, "the busy moment did not restart the wait"


def assert_settles(timeline: list[tuple[float, int]]) -> None:
    """At most one change, and that one up: noise never sends replicas back and forth."""
    moves = changes(timeline)
    assert len(moves) <= 1, moves
    assert all(after > before for _, before, after in moves), moves


def test_no_flapping_on_noisy_lag() -> None:
    rng = random.Random(7)
    # flat but noisy, around the target for one replica
    timeline = run(policy(), lambda t: spread(rng.uniform(0, 2 * TARGET)), 600)
    assert_settles(timeline)
    # quiet with isolated spikes far above the target: no change at all
    timeline = run(policy(), lambda t: spread(3.5 * TARGET if t % 7 == 0 else 0), 600)
    assert changes(timeline) == []
    # noisy around a level two replicas hold
    for seed in range(5):
        noise = random.Random(seed)
        timeline = run(policy(), lambda t, n=noise: spread(n.uniform(0.6, 2.6) * TARGET),
                       600, replicas=2)
        assert_settles(timeline)


def test_a_stuck_partition_does_not_drive_replicas_to_max() -> None:
    """Partition 0's consumer is stuck: its lag grows, its committed offset never moves;
    the others are idle. More replicas cannot help it."""
    stuck = frozenset({0})
    timeline = run(policy(), lambda t: {0: int(5 * TARGET + 500 * t)}, 300, stuck=stuck)
    assert {r for _, r in timeline} == {1}
    # constant lag on the stuck partition, from the first sample: the same
    timeline = run(policy(), lambda t: {0: 20 * TARGET}, 300, stuck=stuck)
    assert {r for _, r in timeline} == {1}


def test_a_stuck_partition_leaves_the_others_to_scale_on_their_own_lag() -> None:
    stuck = frozenset({0})

    def curve(t: float) -> dict[int, int]:
        return {0: 50 * TARGET, 1: int(800 * t), 2: int(800 * t), 3: int(800 * t)}

    policy_ = policy()
    timeline = run(policy_, curve, 120, stuck=stuck)
    # the three healthy partitions with lag cap the replicas at three
    assert max(r for _, r in timeline) == 3
    assert policy_.decide(sample(121.0, curve(121.0), stuck), 3).stuck == (0,)


def test_no_change_while_the_group_rebalances_but_bounds_hold() -> None:
    policy_ = policy()
    for t in range(30):  # lag far above target and growing, but a rebalance is under way
        decision = policy_.decide(sample(float(t), spread(5000 * t)), 2, rebalancing=True)
        assert decision.replicas == 2
    assert "rebalance" in decision.reason
    assert policy_.decide(sample(30.0, spread(150_000)), 2).replicas == 4  # settled
    assert policy().decide(sample(0.0, {}), 6, rebalancing=True).replicas == PARTITIONS


@pytest.mark.parametrize("kwargs", [
    {"min_replicas": 0}, {"min_replicas": 5}, {"target_lag": 0}, {"idle_ratio": 1.0},
    {"max_step_up": 0}, {"max_step_down": 0},
])
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        policy(**kwargs)


class FakePool:
    def __init__(self) -> None:
        self.replicas = 0
        self.supervised = 0
        self.joined = True  # every replica holds partitions

    def statuses(self) -> list[WorkerStatus | None]:
        assigned = ["tx[0]"] if self.joined else []
        return [WorkerStatus(pid=1, written_at=0.0, assigned=assigned, batches=0, events=0,
                             last_progress=0.0) for _ in range(self.replicas)]

    def __len__(self) -> int:
        return self.replicas

    def scale_to(self, count: int) -> None:
        self.replicas = count

    def supervise(self) -> list[object]:
        self.supervised += 1
        return []


class FakeObserver:
    topic = "tx"

    def __init__(self, clock: list[float], curve: LagCurve) -> None:
        self.clock, self.curve = clock, curve

    def sample(self, timeout: float = 5.0) -> LagSample | None:
        return sample(self.clock[0], self.curve(self.clock[0]))

    def drain(self) -> None:
        pass


def test_autoscaler_scales_the_pool_and_records_events() -> None:
    clock = [0.0]
    pool = FakePool()
    curve: LagCurve = lambda t: spread(400 * t if t < 40 else 0)  # noqa: E731
    scaler = Autoscaler(pool, FakeObserver(clock, curve), policy(), interval_s=1.0,
                        clock=lambda: clock[0])
    scaler.start()
    assert len(pool) == 1
    while clock[0] < 120:
        scaler.step()
        clock[0] += 0.25
    assert pool.supervised == 480
    assert len(scaler.points) == 120  # one sample a second, not one a step
    ups = [e for e in scaler.events if e.after > e.before]
    downs = [e for e in scaler.events if e.after < e.before]
    assert ups and downs
    assert ups[0].at < downs[0].at
    assert max(e.after for e in scaler.events) <= PARTITIONS
    assert len(pool) == scaler.events[-1].after
    assert all(e.reason for e in scaler.events)


def test_autoscaler_waits_for_new_replicas_to_join_at_most_the_settle_timeout() -> None:
    clock = [0.0]
    pool = FakePool()
    pool.joined = False
    scaler = Autoscaler(pool, FakeObserver(clock, lambda t: spread(5000 * t)), policy(),
                        interval_s=1.0, settle_timeout_s=12.0, clock=lambda: clock[0])
    scaler.start()
    while clock[0] < 30:
        scaler.step()
        clock[0] += 0.5
    assert scaler.events and scaler.events[0].at > 12.0
