"""The same transaction_id produced twice at two offsets counts once (features.recent_ids
through features.online and stream.core, on the in-memory store): not counted into the
customer's or the terminal's state, its decision marked, every other event's features as
if the duplicate had never been produced."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from fraudstream.features import customer_state, recent_ids, terminal_state
from fraudstream.features.customer_state import RECENT_IDS_BYTES, STATE_BYTES
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.recent_ids import DUPLICATE, digest, find_duplicates, remembered
from fraudstream.features.store import MemoryStateStore
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.metrics import WorkerMetrics
from tests.unit.test_state_backlog import Model

T0 = 1_522_540_800_000 + 10 * DAY_MS
Event = tuple[str, str, int]  # transaction id, customer, offset (partition 0)


def batch(events: Sequence[Event], with_ids: bool = True) -> TransactionBatch:
    return TransactionBatch(
        [c for _, c, _ in events], ["t"] * len(events),
        np.array([T0 + 60_000 * o for _, _, o in events], dtype=np.int64),
        np.array([10.0 + o for _, _, o in events]), np.zeros(len(events), dtype=np.int64),
        np.array([o for _, _, o in events], dtype=np.int64),
        [tx for tx, _, _ in events] if with_ids else ())


def run(fs: OnlineFeatureStore, events: Sequence[Event],
        with_ids: bool = True) -> tuple[np.ndarray, list[int]]:
    matrix, pending = fs.fetch(batch(events, with_ids))
    fs.update(pending)
    return matrix, pending.duplicates


def stored(store: MemoryStateStore, customer: str = "c") -> bytes:
    raw = store.get_many([f"fs:c:{customer}".encode()])[0]
    assert raw is not None
    return raw


def counts(store: MemoryStateStore) -> tuple[int, int]:
    """(the customer's stored count, the terminal's)."""
    terminal = store.get_many([b"fs:t:t"])[0]
    return (sum(customer_state.decode(stored(store)).counts),
            sum(terminal_state.decode(terminal).counts))


def test_produced_twice_in_two_batches_counts_once() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    assert run(fs, [("a", "c", 0)])[1] == []
    assert run(fs, [("a", "c", 1)])[1] == [0]
    assert counts(store) == (1, 1)
    assert fs.take_duplicates() == 1 and fs.take_duplicates() == 0


def test_produced_twice_in_one_batch_counts_once_and_the_rest_is_exact() -> None:
    store, clean = MemoryStateStore(), MemoryStateStore()
    matrix, duplicates = run(OnlineFeatureStore(store),
                             [("a", "c", 0), ("a", "c", 1), ("b", "c", 2)])
    expected, _ = run(OnlineFeatureStore(clean), [("a", "c", 0), ("b", "c", 2)])
    assert duplicates == [1]
    assert np.array_equal(matrix[[0, 2]], expected)
    assert counts(store) == (2, 2)
    assert stored(store)[:STATE_BYTES] == stored(clean)[:STATE_BYTES]


def test_later_events_score_as_if_the_duplicate_was_never_produced() -> None:
    store, clean = MemoryStateStore(), MemoryStateStore()
    fs, reference = OnlineFeatureStore(store), OnlineFeatureStore(clean)
    run(fs, [("a", "c", 0)])
    run(reference, [("a", "c", 0)])
    run(fs, [("a", "c", 1)])
    later, _ = run(fs, [("b", "c", 2)])
    assert np.array_equal(later, run(reference, [("b", "c", 2)])[0])


def test_a_replayed_record_is_a_replay_not_a_duplicate() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, [("a", "c", 0), ("b", "c", 1)])
    assert run(fs, [("a", "c", 0), ("b", "c", 1)])[1] == []
    assert run(fs, [("b", "c", 5), ("b", "c", 5)])[1] == [0, 1]
    assert counts(store) == (2, 2)


def test_the_same_id_of_two_customers_is_no_duplicate() -> None:
    store = MemoryStateStore()
    assert run(OnlineFeatureStore(store), [("a", "c", 0), ("a", "d", 1)])[1] == []


def test_the_window_is_the_customers_last_two_transactions() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, [("a", "c", 0), ("b", "c", 1)])
    assert run(fs, [("a", "c", 2)])[1] == [0], "one of the last two"
    run(fs, [("x", "c", 3), ("y", "c", 4)])
    assert run(fs, [("a", "c", 5)])[1] == [], "older than the last two: counted again"


def test_batches_without_ids_keep_the_stored_ones() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, [("a", "c", 0)])
    run(fs, [("b", "c", 1)], with_ids=False)
    assert len(stored(store)) == STATE_BYTES + RECENT_IDS_BYTES
    assert run(fs, [("a", "c", 2)])[1] == [0]


def test_a_state_written_before_the_ids_is_read_and_gets_them() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, [("a", "c", 0)], with_ids=False)
    assert len(stored(store)) == STATE_BYTES
    run(fs, [("b", "c", 1)])
    assert stored(store)[STATE_BYTES:] == remembered(b"", [digest("b")])
    assert run(fs, [("b", "c", 2)])[1] == [0]


def test_a_write_redone_after_a_conflict_keeps_both_writers_ids() -> None:
    store = MemoryStateStore()
    worker, zombie = OnlineFeatureStore(store), OnlineFeatureStore(store)
    run(worker, [("a", "c", 0)])
    _, pending = worker.fetch(batch([("b", "c", 2)]))
    run(zombie, [("z", "c", 1)])
    assert worker.update(pending) == 2  # the customer and the terminal
    recent = stored(store)[STATE_BYTES:]
    assert recent == remembered(remembered(b"", [digest("a"), digest("z")]), [digest("b")])
    assert counts(store) == (3, 3)


def test_the_duplicates_decision_is_marked() -> None:
    core = DecisionCore(OnlineFeatureStore(MemoryStateStore()), CircuitBreaker(1, 0.0),
                        WorkerMetrics.create(CollectorRegistry()))
    first = core.decide(batch([("a", "c", 0), ("b", "d", 1)]), Model())
    assert first.decision(0, "a", "c", 0, 0.0).degraded == []
    assert first.update is not None
    core.features.update(first.update)
    again = core.decide(batch([("a", "c", 2), ("e", "d", 3)]), Model())
    assert again.decision(0, "a", "c", 0, 0.0).degraded == [DUPLICATE]
    assert again.decision(1, "e", "d", 0, 0.0).degraded == []


@pytest.mark.parametrize("ids", [["a", "b", "c"], ["x"]])
def test_remembered_keeps_the_newest_first(ids: list[str]) -> None:
    recent = remembered(b"", [digest(i) for i in ids])
    assert len(recent) == RECENT_IDS_BYTES
    assert recent[:5] == digest(ids[-1])
    assert remembered(recent, [digest(ids[-1])]) == recent


def test_a_digest_is_never_the_empty_slot() -> None:
    assert all(digest(str(i)) != bytes(5) for i in range(10_000))
    assert find_duplicates(np.zeros(1, np.int64), np.zeros(1, np.int64),
                           np.zeros(1, np.int64), [None], [bytes(10)],
                           recent_ids.digests(["q"])) == []


def test_a_customer_left_without_events_does_not_hide_another_customers_second() -> None:
    """Two keys and, once the duplicate is taken out, two events, both of one customer:
    each must still be counted."""
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, [("a", "c", 0)])
    assert run(fs, [("a", "c", 1), ("x", "d", 2), ("y", "d", 3)])[1] == [0]
    assert sum(customer_state.decode(stored(store, "d")).counts) == 2
    assert counts(store) == (1, 3)
