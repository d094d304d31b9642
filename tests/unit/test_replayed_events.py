"""A replayed event (a crash, a rebalance, an aborted transaction) is scored on the state
as of that event where the state can tell it, and marked degraded "replay" where it
cannot (features.kernels, through features.online and stream.core, on the in-memory
store): the customer state keeps the gap of its last counted event, so a replay of that
event is exact; an older one is scored on a state that already counts later events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry

from fraudstream.features.online import REPLAY, OnlineFeatureStore
from fraudstream.features.recent_ids import DUPLICATE
from fraudstream.features.store import MemoryStateStore
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.metrics import WorkerMetrics
from tests.metrics import counter_value
from tests.unit.test_duplicate_transactions import Event, batch, counts
from tests.unit.test_state_backlog import Model

FIRST_PASS: list[Event] = [("a", "c", 0), ("b", "d", 1), ("x", "c", 2), ("y", "c", 3)]


def first_pass(fs: OnlineFeatureStore, events: Sequence[Event]) -> np.ndarray:
    """The features each event was first scored on, one batch per event."""
    rows = []
    for event in events:
        matrix, pending = fs.fetch(batch([event]))
        fs.update(pending)
        rows.append(matrix[0])
    return np.asarray(rows)


def test_a_replay_of_an_earlier_event_is_marked_and_the_last_one_is_exact() -> None:
    fs = OnlineFeatureStore(MemoryStateStore())
    first = first_pass(fs, FIRST_PASS)
    matrix, pending = fs.fetch(batch(FIRST_PASS[1:]))  # read again from offset 1
    # Offset 2 is customer c's, which has counted offset 3 since: stale. Offset 1 is d's
    # last and offset 3 is c's last: scored exactly as the first time.
    assert pending.replays == [1]
    assert np.array_equal(matrix[[0, 2]], first[[1, 3]])
    assert not np.array_equal(matrix[1], first[2]), "the stale replay's features differ"


def test_events_after_the_replay_are_not_marked() -> None:
    fs = OnlineFeatureStore(MemoryStateStore())
    first_pass(fs, FIRST_PASS)
    _, pending = fs.fetch(batch([("x", "c", 2), ("y", "c", 3), ("z", "c", 4)]))
    assert pending.replays == [0]
    fs.update(pending)
    _, later = fs.fetch(batch([("w", "c", 5)]))
    assert later.replays == []


def test_an_event_on_a_partition_new_to_the_customer_is_counted() -> None:
    fs = OnlineFeatureStore(MemoryStateStore())
    first_pass(fs, FIRST_PASS)
    moved = batch([("m", "c", 0)])
    moved.partitions[:] = 1
    assert fs.fetch(moved)[1].replays == []


def test_replays_of_a_customer_on_two_partitions_count_once_and_are_marked() -> None:
    """Events of one customer on partitions 0 and 1 (a producer that does not key by
    customer), then partition 0 read again: its events are recognised by the mark the
    state keeps for partition 0, scored as stale replays, and not counted again."""
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    on_zero = batch([("a", "c", 0), ("b", "c", 1)])
    on_one = batch([("x", "c", 0), ("y", "c", 1)])
    on_one.partitions[:] = 1
    for events in (on_zero, on_one):
        fs.update(fs.fetch(events)[1])
    _, pending = fs.fetch(on_zero)  # partition 0 again
    assert pending.replays == [0, 1]
    assert all(value is None for value in pending.values[:1]), "the customer is unchanged"
    assert counts(store) == (4, 4)
def test_the_core_marks_the_stale_replays_decision_and_counts_it() -> None:
    metrics = WorkerMetrics.create(CollectorRegistry())
    core = DecisionCore(OnlineFeatureStore(MemoryStateStore()), CircuitBreaker(1, 0.0),
                        metrics)
    first_pass(core.features, FIRST_PASS)
    decided = core.decide(batch(FIRST_PASS[1:]), Model())
    assert [decided.decision(i, tx, c, 0, 0.0).degraded
            for i, (tx, c, _) in enumerate(FIRST_PASS[1:])] == [[], [REPLAY], []]
    assert counter_value(metrics.degraded, fallback=REPLAY) == 1.0


def test_a_duplicate_and_a_replay_are_told_apart() -> None:
    core = DecisionCore(OnlineFeatureStore(MemoryStateStore()), CircuitBreaker(1, 0.0),
                        WorkerMetrics.create(CollectorRegistry()))
    first_pass(core.features, FIRST_PASS)
    decided = core.decide(batch([("x", "c", 2), ("y", "c", 3), ("y", "c", 4)]), Model())
    assert [decided.decision(i, "t", "c", 0, 0.0).degraded for i in range(3)] == [
        [REPLAY], [], [DUPLICATE]]
