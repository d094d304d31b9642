"""stream.state_epoch through stream.core on the in-memory store: when the state's epoch is
checked (start, interval, soon after a failed call, the breaker's probe), and that no
decision on state that came back incomplete goes unflagged."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from fraudstream.features.epoch import StateEpoch, mark_rebuilt
from fraudstream.features.online import OnlineFeatureStore
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.stream.state_epoch import RETRY_S, STATE_LOST, EpochWatch
from tests.metrics import counter_value
from tests.unit.test_state_backlog import FlakyStore, Model, batch

TTL_MS = 40 * 86_400_000
INTERVAL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def core_on(store: FlakyStore, clock: Clock, failures: int = 1,
            expect_state: bool = False) -> tuple[DecisionCore, WorkerMetrics]:
    metrics = WorkerMetrics.create(CollectorRegistry())
    watch = EpochWatch(StateEpoch(store, "fs", TTL_MS), metrics, INTERVAL_S,
                       lambda: expect_state, clock)
    core = DecisionCore(OnlineFeatureStore(store), CircuitBreaker(failures, 0.0, clock),
                        metrics, epoch=watch)
    return core, metrics


def decide(core: DecisionCore, offset: int) -> list[str]:
    decided = core.decide(batch([offset]), Model())
    if decided.update is not None:
        core.features.update(decided.update)
    return decided.degraded


def lost(metrics: WorkerMetrics) -> float:
    return float(metrics.feature_state_lost._value.get())


def test_redis_back_empty_after_an_outage_flags_the_first_decision_on_it() -> None:
    store, clock = FlakyStore(), Clock()
    core, metrics = core_on(store, clock)
    core.check_epoch()
    assert decide(core, 0) == [] and lost(metrics) == 0
    store.down = True
    assert decide(core, 1) == ["features"]
    store.down = False
    store.data.clear()  # restarted empty
    assert decide(core, 2) == [STATE_LOST], "the probe checks the epoch before the read"
    assert lost(metrics) == 1
    assert counter_value(metrics.feature_state_losses, kind="missing") == 1
    assert core.epoch is not None and core.epoch.lost.startswith("missing:")


def test_a_single_failed_call_has_the_epoch_checked_soon() -> None:
    store, clock = FlakyStore(), Clock()
    core, metrics = core_on(store, clock, failures=3)
    core.check_epoch()
    assert decide(core, 0) == []
    store.down = True
    assert decide(core, 1) == ["features"]  # the breaker stays closed
    store.down = False
    store.data.clear()
    core.check_epoch()
    assert lost(metrics) == 0, "not due yet"
    clock.now += RETRY_S
    core.check_epoch()
    assert lost(metrics) == 1 and decide(core, 2) == [STATE_LOST]


def test_checks_wait_for_the_interval_and_a_rebuild_clears_the_flag() -> None:
    store, clock = FlakyStore(), Clock()
    core, metrics = core_on(store, clock)
    core.check_epoch()
    store.data.clear()
    clock.now += INTERVAL_S - 1
    core.check_epoch()
    assert decide(core, 0) == [], "between checks a loss is not known yet"
    clock.now += 1
    core.check_epoch()
    assert decide(core, 1) == [STATE_LOST]
    mark_rebuilt(store, "fs", TTL_MS)
    clock.now += INTERVAL_S
    core.check_epoch()
    assert decide(core, 2) == [] and lost(metrics) == 0


def test_an_empty_store_at_start_when_the_group_committed_is_a_loss() -> None:
    store, clock = FlakyStore(), Clock()
    core, metrics = core_on(store, clock, expect_state=True)
    core.check_epoch()
    assert lost(metrics) == 1 and decide(core, 0) == [STATE_LOST]


def test_a_down_store_at_start_is_checked_once_it_answers() -> None:
    store, clock = FlakyStore(), Clock()
    core, metrics = core_on(store, clock)
    store.down = True
    core.check_epoch()
    store.down = False
    clock.now += RETRY_S
    core.check_epoch()
    assert core.epoch is not None and core.epoch.lost == ""
    store.data.clear()
    clock.now += INTERVAL_S
    core.check_epoch()
    assert lost(metrics) == 1
    assert np.isclose(counter_value(metrics.feature_state_losses, kind="missing"), 1)
