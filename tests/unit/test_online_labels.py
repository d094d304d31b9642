"""OnlineFeatureStore.apply_labels on the in-memory store: each fraud counts once."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from fraudstream.features import terminal_state
from fraudstream.features.definitions import COL_TERMINAL_COUNT, COL_TERMINAL_RISK, DAY_MS, HOUR_MS
from fraudstream.features.online import (
    LABEL_OUTCOMES,
    LabelBatch,
    OnlineFeatureStore,
    TransactionBatch,
    terminal_key,
)
from fraudstream.features.store import MemoryStateStore
from fraudstream.features.terminal_state import TerminalState, fraud_id

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
DAY0 = T0 // DAY_MS
RING = terminal_state.TERMINAL_RING_DAYS


def at(day: int, hour: int = 12) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS


def transactions(rows: Sequence[tuple[str, str, int, int, int]]) -> TransactionBatch:
    """rows of (customer, terminal, timestamp, partition, offset); amounts are 1.0."""
    return TransactionBatch(
        customer_ids=[r[0] for r in rows], terminal_ids=[r[1] for r in rows],
        timestamps_ms=np.array([r[2] for r in rows], dtype=np.int64),
        amounts=np.ones(len(rows)),
        partitions=np.array([r[3] for r in rows], dtype=np.int64),
        offsets=np.array([r[4] for r in rows], dtype=np.int64))


def labels(rows: Sequence[tuple[str, str, int, bool]]) -> LabelBatch:
    """rows of (transaction id, terminal, transaction timestamp, is fraud)."""
    return LabelBatch(
        transaction_ids=[r[0] for r in rows], terminal_ids=[r[1] for r in rows],
        timestamps_ms=np.array([r[2] for r in rows], dtype=np.int64),
        is_fraud=np.array([r[3] for r in rows], dtype=bool))


def run(fs: OnlineFeatureStore, batch: TransactionBatch) -> np.ndarray:
    matrix, pending = fs.fetch(batch)
    fs.update(pending)
    return matrix


def stored(store: MemoryStateStore, terminal: str) -> TerminalState:
    raw = store.get_many([terminal_key(b"fs", terminal)])[0]
    assert raw is not None
    return terminal_state.decode(raw)


def snapshot(store: MemoryStateStore) -> dict[bytes, tuple[bytes, float]]:
    """Values AND deadlines: equal snapshots mean nothing was written at all."""
    return dict(store.data)


# Terminal T: t0, t1 on day 0 (partition 0), t2 on day 1 (partition 1), t3 on day 3.
HISTORY = [("c0", "T", at(0, 9), 0, 0), ("c1", "T", at(0, 10), 0, 1),
           ("c2", "T", at(1), 1, 0), ("c0", "T", at(3), 0, 2)]


def terminal_with_history() -> tuple[MemoryStateStore, OnlineFeatureStore]:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, transactions(HISTORY))
    return store, fs


def fraud(tx_id: str, day: int, terminal: str = "T") -> tuple[str, str, int, bool]:
    return tx_id, terminal, at(day, 11), True


def legit(tx_id: str, day: int, terminal: str = "T") -> tuple[str, str, int, bool]:
    return tx_id, terminal, at(day, 11), False


def test_outcome_names() -> None:
    assert set(LABEL_OUTCOMES) == {"applied", "legit", "duplicate", "unknown", "too_old"}


def test_a_fraud_label_is_counted_in_its_day_bucket() -> None:
    store, fs = terminal_with_history()
    assert fs.apply_labels(labels([fraud("t0", 0)])) == {"applied": 1}
    state = stored(store, "T")
    assert state.frauds[(DAY0) % RING] == 1 and sum(state.frauds) == 1
    assert state.fraud_ids == {fraud_id("t0"): DAY0}
    assert sum(state.counts) == 4  # labels never count transactions


def test_a_label_arriving_twice_is_counted_once() -> None:
    store, fs = terminal_with_history()
    assert fs.apply_labels(labels([fraud("t0", 0)])) == {"applied": 1}
    after_first = stored(store, "T")
    assert fs.apply_labels(labels([fraud("t0", 0)])) == {"duplicate": 1}
    assert stored(store, "T") == after_first
    # Twice in one batch, from a fresh worker on the same store.
    assert OnlineFeatureStore(store).apply_labels(
        labels([fraud("t2", 1), fraud("t2", 1)])) == {"applied": 1, "duplicate": 1}
    state = stored(store, "T")
    assert sum(state.frauds) == 2
    assert state.frauds[DAY0 % RING] == 1 and state.frauds[(DAY0 + 1) % RING] == 1


def test_labels_out_of_order_give_the_same_state() -> None:
    in_order, fs = terminal_with_history()
    assert fs.apply_labels(labels([fraud("t0", 0), fraud("t1", 0), fraud("t2", 1),
                                   fraud("t3", 3)])) == {"applied": 4}
    shuffled, fs2 = terminal_with_history()
    assert fs2.apply_labels(labels([fraud("t3", 3), fraud("t1", 0)])) == {"applied": 2}
    assert fs2.apply_labels(labels([fraud("t2", 1), fraud("t0", 0)])) == {"applied": 2}
    assert stored(shuffled, "T") == stored(in_order, "T")
    state = stored(shuffled, "T")
    assert state.window_totals(DAY0, DAY0 + 3) == (4, 4)
    # Scored on day 10, the 7-day window ends at day 3: all four frauds, in both stores.
    for store in (in_order, shuffled):
        row = run(OnlineFeatureStore(store), transactions([("c9", "T", at(10), 2, 0)]))[0]
        assert row[COL_TERMINAL_COUNT[7]] == 4 and row[COL_TERMINAL_RISK[7]] == 1.0


@pytest.mark.parametrize("label", [
    fraud("t0", 0, terminal="never-seen"),  # terminal never seen
    fraud("t9", 4),  # after the terminal's last day (3)
    fraud("t9", 2),  # a day in the ring without transactions
])
def test_a_label_for_an_unknown_transaction_is_ignored(
        label: tuple[str, str, int, bool]) -> None:
    store, fs = terminal_with_history()
    before = snapshot(store)
    assert fs.apply_labels(labels([label])) == {"unknown": 1}
    assert snapshot(store) == before
    assert terminal_key(b"fs", "never-seen") not in store.data


def test_more_fraud_labels_than_transactions_that_day_are_ignored() -> None:
    store, fs = terminal_with_history()
    outcomes = fs.apply_labels(labels([fraud("t2", 1), fraud("t-bogus", 1)]))
    assert outcomes == {"applied": 1, "unknown": 1}
    state = stored(store, "T")
    assert state.frauds[(DAY0 + 1) % RING] == 1
    assert fraud_id("t-bogus") not in state.fraud_ids


def test_a_late_label_whose_day_left_the_ring_is_ignored() -> None:
    store, fs = terminal_with_history()
    # The terminal moves on to day 3 + RING (42): its ring now holds days 4 .. 3 + RING,
    # so day 3 has just left it.
    last = 3 + RING
    run(fs, transactions([("c0", "T", at(4), 0, 3), ("c0", "T", at(last), 0, 4)]))
    assert stored(store, "T").last_day == DAY0 + last
    before = snapshot(store)
    assert fs.apply_labels(labels([fraud("t0", 0), fraud("t3", 3)])) == {"too_old": 2}
    assert snapshot(store) == before
    # Day 4 = last - (RING - 1) is the oldest day still held.
    assert fs.apply_labels(labels([fraud("t4", 4)])) == {"applied": 1}
    assert stored(store, "T").frauds[(DAY0 + 4) % RING] == 1


def test_non_fraud_labels_change_nothing() -> None:
    store, fs = terminal_with_history()
    before = snapshot(store)
    outcomes = fs.apply_labels(labels([legit("t0", 0), legit("t1", 0), legit("t2", 1),
                                       legit("x", 5, terminal="elsewhere")]))
    assert outcomes == {"legit": 4}
    assert snapshot(store) == before  # not even a TTL refresh


def test_mixed_batch_over_several_terminals() -> None:
    store, fs = terminal_with_history()
    run(fs, transactions([("c5", "U", at(2), 1, 1)]))
    outcomes = fs.apply_labels(labels([
        legit("t0", 0), fraud("t1", 0), fraud("u0", 2, terminal="U"), fraud("t1", 0),
        fraud("zz", 2, terminal="nowhere"), fraud("u1", 2, terminal="U"),
    ]))
    assert outcomes == {"legit": 1, "applied": 2, "duplicate": 1, "unknown": 2}
    assert sum(outcomes.values()) == 6
    assert sum(stored(store, "T").frauds) == 1
    assert sum(stored(store, "U").frauds) == 1


def test_an_empty_label_batch() -> None:
    store, fs = terminal_with_history()
    before = snapshot(store)
    outcomes = fs.apply_labels(labels([]))
    assert outcomes == collections.Counter() and sum(outcomes.values()) == 0
    assert snapshot(store) == before


# --- concurrent writers -----------------------------------------------------------------


class RacingStore:
    """Runs ``meanwhile`` once, right before the first compare-and-set goes through: another
    worker writing the same keys between our read and our write."""

    def __init__(self, inner: MemoryStateStore, meanwhile: Callable[[], None]) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], None] | None = meanwhile
        self.writes = 0

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        self.writes += 1
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return self.inner.compare_and_set_many(keys, expected, values, ttl_ms)

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Callable[[], list[int]]:
        conflicts = self.compare_and_set_many(keys, expected, values, ttl_ms)
        return lambda: conflicts

    def get_many_after(self, write: Callable[[], list[int]], keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        return write(), self.get_many(keys)


def test_the_same_label_applied_concurrently_counts_once() -> None:
    store, _ = terminal_with_history()
    other: list[collections.Counter[str]] = []
    racing = RacingStore(store, lambda: other.append(
        OnlineFeatureStore(store).apply_labels(labels([fraud("t0", 0)]))))
    ours = OnlineFeatureStore(racing).apply_labels(labels([fraud("t0", 0)]))
    assert other == [{"applied": 1}]
    assert ours == {"duplicate": 1}  # re-read after the conflict: already counted
    assert racing.writes == 2  # the conflicting write, then the retry
    state = stored(store, "T")
    assert sum(state.frauds) == 1 and state.fraud_ids == {fraud_id("t0"): DAY0}


def test_different_labels_applied_concurrently_both_count() -> None:
    store, _ = terminal_with_history()
    racing = RacingStore(store, lambda: OnlineFeatureStore(store).apply_labels(
        labels([fraud("t0", 0)])))
    assert OnlineFeatureStore(racing).apply_labels(labels([fraud("t1", 0),
                                                           fraud("t2", 1)])) == {"applied": 2}
    state = stored(store, "T")
    assert state.frauds[DAY0 % RING] == 2 and state.frauds[(DAY0 + 1) % RING] == 1
    assert set(state.fraud_ids) == {fraud_id("t0"), fraud_id("t1"), fraud_id("t2")}


def test_a_concurrent_label_filling_the_day_turns_ours_unknown() -> None:
    store, _ = terminal_with_history()
    racing = RacingStore(store, lambda: OnlineFeatureStore(store).apply_labels(
        labels([fraud("t2", 1)])))
    # Day 1 had one transaction: once the other fraud counts, ours cannot.
    assert OnlineFeatureStore(racing).apply_labels(labels([fraud("x", 1)])) == {"unknown": 1}
    state = stored(store, "T")
    assert state.frauds[(DAY0 + 1) % RING] == 1
    assert state.fraud_ids == {fraud_id("t2"): DAY0 + 1}


def test_a_concurrent_transaction_and_a_label_both_survive() -> None:
    store, _ = terminal_with_history()
    racing = RacingStore(store, lambda: run(OnlineFeatureStore(store),
                                            transactions([("c7", "T", at(3, 20), 3, 0)])))
    assert OnlineFeatureStore(racing).apply_labels(labels([fraud("t3", 3)])) == {"applied": 1}
    state = stored(store, "T")
    assert state.counts[(DAY0 + 3) % RING] == 2 and state.marks[3] == 0
    assert state.frauds[(DAY0 + 3) % RING] == 1


def test_a_label_applied_while_transactions_are_written_is_not_lost() -> None:
    store, _ = terminal_with_history()
    other: list[collections.Counter[str]] = []
    racing = RacingStore(store, lambda: other.append(
        OnlineFeatureStore(store).apply_labels(labels([fraud("t1", 0)]))))
    worker = OnlineFeatureStore(racing)
    _, pending = worker.fetch(transactions([("c0", "T", at(3, 21), 0, 5)]))
    assert worker.update(pending) == 1  # terminal T conflicted (customer c0 did not)
    assert other == [{"applied": 1}]
    state = stored(store, "T")
    assert state.frauds[DAY0 % RING] == 1 and state.fraud_ids == {fraud_id("t1"): DAY0}
    assert state.counts[(DAY0 + 3) % RING] == 2 and state.marks[0] == 5


def test_a_terminal_with_more_than_65535_frauds_in_its_ring_can_still_be_stored() -> None:
    n = 65_536
    store = MemoryStateStore()
    state = TerminalState()
    state.add_transaction(DAY0, 0, 0)
    state.counts[DAY0 % RING] = n  # a busy merchant terminal under a card-testing attack
    assert store.compare_and_set_many([terminal_key(b"fs", "T")], [None],
                                      [terminal_state.encode(state)], 60_000) == []
    ids = [f"tx-{i}" for i in range(n)]
    outcomes = OnlineFeatureStore(store).apply_labels(LabelBatch(
        ids, ["T"] * n, np.full(n, at(0), dtype=np.int64), np.ones(n, dtype=bool)))
    assert sum(outcomes.values()) == n
    assert outcomes == {"applied": n}
    assert stored(store, "T").frauds[DAY0 % RING] == outcomes["applied"]
    assert len(stored(store, "T").fraud_ids) == n
