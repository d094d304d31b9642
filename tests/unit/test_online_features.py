"""features.online on the in-memory store: values, replays and compare-and-set conflicts."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.customer_state import CustomerState
from fraudstream.features.definitions import (
    CENTS_MAX,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    RING_DAYS,
    TERMINAL_RING_DAYS,
)
from fraudstream.features.online import (
    OnlineFeatureStore,
    PendingUpdate,
    TransactionBatch,
    customer_key,
    default_matrix,
    terminal_key,
)
from fraudstream.features.store import MemoryStateStore
from fraudstream.features.terminal_state import TerminalState
from fraudstream.stream.events import MAX_AMOUNT, Rejected, decode_transaction

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z, a Sunday
DAY0 = T0 // DAY_MS
CAP_S = 30 * 86_400.0


def at(day: int, hour: int, minute: int = 0) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS + minute * 60_000


def batch(customers: Sequence[str], terminals: Sequence[str], timestamps: Sequence[int],
          amounts: Sequence[float], partitions: Sequence[int],
          offsets: Sequence[int]) -> TransactionBatch:
    return TransactionBatch(
        customer_ids=list(customers),
        terminal_ids=list(terminals),
        timestamps_ms=np.asarray(timestamps, dtype=np.int64),
        amounts=np.asarray(amounts, dtype=np.float64),
        partitions=np.asarray(partitions, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
    )


def run(fs: OnlineFeatureStore, b: TransactionBatch) -> np.ndarray:
    matrix, pending = fs.fetch(b)
    fs.update(pending)
    return matrix


def stored_state(store: MemoryStateStore, customer: str, prefix: str = "fs") -> CustomerState:
    raw = store.get_many([customer_key(prefix.encode(), customer)])[0]
    assert raw is not None
    return customer_state.decode(raw)


def stored_terminal(store: MemoryStateStore, terminal: str,
                    prefix: str = "fs") -> TerminalState:
    raw = store.get_many([terminal_key(prefix.encode(), terminal)])[0]
    assert raw is not None
    return terminal_state.decode(raw)


def changed_flags(pending: PendingUpdate) -> list[bool]:
    return [entry.changed for entry in pending.entries]


def snapshot(store: MemoryStateStore) -> dict[bytes, bytes]:
    return {key: value for key, (value, _) in store.data.items()}


# Same events as the offline hand test: A on days 0, 0, 5, 7 and B on day 2;
# terminal T1 on days 0, 0, 7 and T2 on days 2, 5.
HAND = batch(["A", "A", "B", "A", "A"], ["T1", "T1", "T2", "T2", "T1"],
             [at(0, 10), at(0, 11), at(2, 3), at(5, 8), at(7, 12)],
             [10.00, 20.50, 100.00, 3.25, 1.00],
             [0, 0, 1, 0, 0], [0, 1, 0, 2, 3])

NO_TERMINAL = [0, 0, 0, 0.0, 0.0, 0.0]  # terminal counts 1/7/30d, then risks 1/7/30d
FIRST = [1.0, 1.0, 0.0, 0.0]  # the history columns of a customer's first day
# Columns: amount, weekend, night, customer counts 1/7/30d, customer averages 1/7/30d,
# gap, amount / 30d mean, terminal counts 1/7/30d, terminal risks 1/7/30d, then amount /
# today's mean, today's mean / 30d mean, 7d mean / mean before the last 7 days, today's
# mean / mean before the last 14 days (0 with nothing before them).
HAND_ROWS = [
    [10.0, 1.0, 0.0, 1, 1, 1, 10.0, 10.0, 10.0, CAP_S, 1.0, *NO_TERMINAL, *FIRST],
    [20.5, 1.0, 0.0, 2, 2, 2, 15.25, 15.25, 15.25, 3600.0, 1.3442622950819672, *NO_TERMINAL,
     1.3442622950819672, 1.0, 0.0, 0.0],
    [100.0, 0.0, 1.0, 1, 1, 1, 100.0, 100.0, 100.0, CAP_S, 1.0, *NO_TERMINAL, *FIRST],
    [3.25, 0.0, 0.0, 1, 3, 3, 3.25, 11.25, 11.25, 421_200.0, 0.28888888888888886,
     *NO_TERMINAL, 1.0, 0.28888888888888886, 0.0, 0.0],
    # T1's windows for day 7 end at day 0: its two day-0 transactions, unlabelled.
    # Days -22..0 hold day 0 (mean 15.25): 2.125 / 15.25.
    [1.0, 1.0, 0.0, 1, 2, 4, 1.0, 2.125, 8.6875, 187_200.0, 0.11510791366906475,
     2, 2, 2, 0.0, 0.0, 0.0, 1.0, 0.11510791366906475, 0.13934426229508196, 0.0],
]


def test_hand_computed_values_in_one_batch() -> None:
    matrix = run(OnlineFeatureStore(MemoryStateStore()), HAND)
    assert matrix.shape == (5, len(FEATURE_NAMES))
    assert matrix.tolist() == HAND_ROWS


@pytest.mark.parametrize("cuts", [[1, 1, 1, 1, 1], [2, 3], [4, 1], [1, 4]])
def test_hand_computed_values_in_several_batches(cuts: list[int]) -> None:
    fs = OnlineFeatureStore(MemoryStateStore())
    rows: list[list[float]] = []
    start = 0
    for size in cuts:
        part = slice(start, start + size)
        rows += run(fs, batch(HAND.customer_ids[part], HAND.terminal_ids[part],
                              HAND.timestamps_ms[part],
                              HAND.amounts[part], HAND.partitions[part],
                              HAND.offsets[part])).tolist()
        start += size
    assert rows == HAND_ROWS


def test_stored_state_after_the_hand_events() -> None:
    store = MemoryStateStore()
    run(OnlineFeatureStore(store), HAND)
    a = stored_state(store, "A")
    assert (a.partition, a.offset) == (0, 3)
    assert a.last_day == DAY0 + 7 and a.last_ts == at(7, 12)
    assert a.prev_gap == 187_200_000
    assert a.counts[DAY0 % RING_DAYS] == 2 and a.cents[DAY0 % RING_DAYS] == 3050
    assert a.counts[(DAY0 + 5) % RING_DAYS] == 1 and a.cents[(DAY0 + 5) % RING_DAYS] == 325
    assert sum(a.counts) == 4 and sum(a.cents) == 3475
    b = stored_state(store, "B")
    assert (b.partition, b.offset) == (1, 0) and sum(b.counts) == 1
    t1 = stored_terminal(store, "T1")
    assert t1.last_day == DAY0 + 7 and t1.marks == {0: 3}
    assert t1.counts[DAY0 % TERMINAL_RING_DAYS] == 2
    assert t1.counts[(DAY0 + 7) % TERMINAL_RING_DAYS] == 1 and sum(t1.counts) == 3
    assert sum(t1.frauds) == 0 and t1.fraud_ids == {}
    t2 = stored_terminal(store, "T2")
    assert t2.last_day == DAY0 + 5 and t2.marks == {0: 2, 1: 0}
    assert t2.counts[(DAY0 + 2) % TERMINAL_RING_DAYS] == 1
    assert t2.counts[(DAY0 + 5) % TERMINAL_RING_DAYS] == 1 and sum(t2.counts) == 2


def test_keys_use_the_prefix_and_expire_after_the_ttl() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store, prefix="test", ttl_days=40)
    run(fs, HAND)
    assert set(store.data) == {b"test:c:A", b"test:c:B", b"test:t:T1", b"test:t:T2"}
    assert fs.customer_key("é") == "test:c:é".encode()
    assert fs.terminal_key("é") == "test:t:é".encode()
    # MemoryStateStore keeps a monotonic deadline: about 40 days from now.
    for key in (b"test:c:A", b"test:t:T1"):
        remaining = store.data[key][1] - time.monotonic()
        assert 40 * 86_400 - 60 < remaining <= 40 * 86_400


def test_replaying_a_whole_batch_changes_nothing() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    first = run(fs, HAND)
    before = snapshot(store)
    matrix, pending = fs.fetch(HAND)
    assert changed_flags(pending) == [False, False, False, False]  # A, B, T1, T2
    assert fs.update(pending) == 0
    assert snapshot(store) == before
    # The last event of each customer scores exactly as it did the first time.
    assert matrix[4].tolist() == first[4].tolist()
    assert matrix[2].tolist() == first[2].tolist()


def test_replayed_prefix_and_new_events_in_one_batch_count_once() -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    run(fs, batch(["A", "A"], ["S", "S"], [at(0, 1), at(0, 2)], [1.0, 2.0], [0, 0], [10, 11]))
    matrix = run(fs, batch(["A", "A", "A"], ["S", "S", "S"], [at(0, 1), at(0, 2), at(0, 3)],
                           [1.0, 2.0, 4.0], [0, 0, 0], [10, 11, 12]))
    assert matrix[2, COL_COUNT[1]] == 3 and matrix[2, COL_AVG[1]] == 7.0 / 3
    assert matrix[2, COL_GAP] == 3600.0
    state = stored_state(store, "A")
    assert sum(state.counts) == 3 and sum(state.cents) == 700 and state.offset == 12
    terminal = stored_terminal(store, "S")
    assert sum(terminal.counts) == 3 and terminal.marks == {0: 12}


def test_default_matrix_is_a_first_transaction() -> None:
    fresh = run(OnlineFeatureStore(MemoryStateStore()),
                batch(["X", "Y"], ["P", "Q"], [at(0, 3), at(6, 12)], [12.34, 0.5], [0, 0],
                      [0, 1]))
    defaults = default_matrix(
        batch(["X", "Y"], ["P", "Q"], [at(0, 3), at(6, 12)], [12.34, 0.5], [0, 0], [0, 1]))
    assert np.array_equal(defaults, fresh)
    assert defaults[0].tolist() == [12.34, 1.0, 1.0, 1, 1, 1, 12.34, 12.34, 12.34, CAP_S,
                                    1.0, *NO_TERMINAL, *FIRST]


def test_amounts_above_the_daily_cents_cap_saturate() -> None:
    store = MemoryStateStore()
    matrix = run(OnlineFeatureStore(store), batch(["W"], ["S"], [at(0, 12)], [5e7], [0], [0]))
    assert stored_state(store, "W").cents[DAY0 % RING_DAYS] == CENTS_MAX
    assert matrix[0, COL_AVG[1]] == CENTS_MAX / 100


def test_amounts_beyond_the_bound_are_rejected_not_stored() -> None:
    raw = (b'{"transaction_id": 1, "timestamp": 1522576800000, "customer_id": "W", '
           b'"terminal_id": 2, "amount": 1e17}')
    with pytest.raises(Rejected, match="amount exceeds"):
        decode_transaction(raw, 1024)


def test_the_largest_amount_the_decoder_accepts_can_be_stored() -> None:
    raw = (b'{"transaction_id": 1, "timestamp": 1522576800000, "customer_id": "W", '
           b'"terminal_id": 2, "amount": %d}' % int(MAX_AMOUNT))
    event, ts = decode_transaction(raw, 1024)
    store = MemoryStateStore()
    run(OnlineFeatureStore(store), batch([event.customer_id], [event.terminal_id], [ts],
                                         [event.amount], [0], [0]))
    assert stored_state(store, "W").cents[DAY0 % RING_DAYS] == CENTS_MAX


# --- compare-and-set conflicts ----------------------------------------------------------


def test_conflict_with_a_writer_that_applied_part_of_the_batch() -> None:
    store = MemoryStateStore()
    worker = OnlineFeatureStore(store)
    run(worker, batch(["A"], ["S"], [at(0, 9)], [10.0], [0], [1]))

    own = batch(["A", "A"], ["S", "S"], [at(0, 10), at(1, 10)], [20.0, 30.0], [0, 0], [2, 3])
    matrix, pending = worker.fetch(own)
    # A zombie worker (same partition, older assignment) writes offset 2 meanwhile.
    zombie = OnlineFeatureStore(store)
    run(zombie, batch(["A"], ["S"], [at(0, 10)], [20.0], [0], [2]))
    assert sum(stored_state(store, "A").counts) == 2
    assert sum(stored_terminal(store, "S").counts) == 2

    assert worker.update(pending) == 2  # customer A and terminal S
    state = stored_state(store, "A")
    assert state.counts[DAY0 % RING_DAYS] == 2  # offsets 1 and 2, once each
    assert state.cents[DAY0 % RING_DAYS] == 3000
    assert state.counts[(DAY0 + 1) % RING_DAYS] == 1  # offset 3
    assert state.cents[(DAY0 + 1) % RING_DAYS] == 3000
    assert sum(state.counts) == 3
    assert (state.partition, state.offset) == (0, 3)
    terminal = stored_terminal(store, "S")
    assert terminal.counts[DAY0 % TERMINAL_RING_DAYS] == 2
    assert terminal.counts[(DAY0 + 1) % TERMINAL_RING_DAYS] == 1
    assert sum(terminal.counts) == 3 and terminal.marks == {0: 3}
    # The features computed before the conflict were right all along.
    assert matrix[:, COL_COUNT[30]].tolist() == [2.0, 3.0]


def test_conflict_with_a_writer_that_applied_the_whole_batch() -> None:
    store = MemoryStateStore()
    worker = OnlineFeatureStore(store)
    own = batch(["A", "A", "B"], ["S", "S", "S"], [at(0, 10), at(0, 11), at(0, 12)],
                [1.0, 2.0, 3.0], [0, 0, 0], [5, 6, 7])
    _, pending = worker.fetch(own)
    run(OnlineFeatureStore(store), own)
    zombie_wrote = snapshot(store)
    assert worker.update(pending) == 3  # customers A and B, terminal S
    assert snapshot(store) == zombie_wrote
    assert sum(stored_state(store, "A").counts) == 2
    assert sum(stored_state(store, "B").counts) == 1
    assert sum(stored_terminal(store, "S").counts) == 3


def test_conflict_with_a_writer_that_created_a_new_customer() -> None:
    store = MemoryStateStore()
    worker = OnlineFeatureStore(store)
    _, pending = worker.fetch(batch(["N"], ["S"], [at(3, 10)], [5.0], [2], [50]))
    assert [entry.read for entry in pending.entries] == [None, None]
    # Someone else stores an older event of the same customer (and terminal) first.
    run(OnlineFeatureStore(store), batch(["N"], ["S"], [at(3, 9)], [7.0], [2], [49]))
    assert worker.update(pending) == 2
    state = stored_state(store, "N")
    assert state.counts[(DAY0 + 3) % RING_DAYS] == 2
    assert state.cents[(DAY0 + 3) % RING_DAYS] == 1200
    assert state.offset == 50 and state.prev_gap == HOUR_MS
    terminal = stored_terminal(store, "S")
    assert terminal.counts[(DAY0 + 3) % TERMINAL_RING_DAYS] == 2
    assert sum(terminal.counts) == 2 and terminal.marks == {2: 50}


def test_only_the_conflicting_customer_is_retried() -> None:
    store = MemoryStateStore()
    worker = OnlineFeatureStore(store)
    own = batch(["A", "B", "A"], ["S", "S", "S"], [at(0, 1), at(0, 2), at(0, 3)],
                [1.0, 2.0, 4.0], [0, 0, 0], [1, 2, 3])
    _, pending = worker.fetch(own)
    # The other writer's event is at another terminal: only customer B conflicts.
    run(OnlineFeatureStore(store), batch(["B"], ["R"], [at(0, 0)], [8.0], [1], [9]))
    assert worker.update(pending) == 1
    a, b = stored_state(store, "A"), stored_state(store, "B")
    assert sum(a.counts) == 2 and sum(a.cents) == 500
    # B: the other writer's event (partition 1) and ours (partition 0), once each.
    assert sum(b.counts) == 2 and sum(b.cents) == 1000
    assert (b.partition, b.offset) == (0, 2)
    assert sum(stored_terminal(store, "S").counts) == 3
    assert sum(stored_terminal(store, "R").counts) == 1


class InterferingStore(MemoryStateStore):
    """Before each compare-and-set, another writer stores one more event of customer A."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.offset = 1000

    def compare_and_set_many(self, keys, expected, values, ttl_ms):
        if self.rounds > 0:
            self.rounds -= 1
            self.offset += 1
            rounds, self.rounds = self.rounds, 0  # the other writer does not interfere
            run(OnlineFeatureStore(self),
                batch(["A"], ["R"], [at(0, 0)], [1.0], [9], [self.offset]))
            self.rounds = rounds
        return super().compare_and_set_many(keys, expected, values, ttl_ms)


def test_repeated_conflicts_are_retried_until_they_stop() -> None:
    rounds = 4
    store = InterferingStore(rounds=rounds)
    worker = OnlineFeatureStore(store)
    _, pending = worker.fetch(batch(["A"], ["S"], [at(0, 5)], [2.0], [0], [7]))
    assert worker.update(pending) == rounds
    state = stored_state(store, "A")
    assert sum(state.counts) == rounds + 1  # 4 interfering events + ours
    assert sum(state.cents) == rounds * 100 + 200
    assert worker.unresolved == 0


def test_endless_conflicts_are_carried_and_written_before_the_next_read() -> None:
    """A key that keeps losing within the batch's retry budget is never an error and
    never dropped: counted, kept, and written first when the next batch reads."""
    store = InterferingStore(rounds=10**9)
    worker = OnlineFeatureStore(store)
    _, pending = worker.fetch(batch(["A"], ["S"], [at(0, 5)], [2.0], [0], [7]))
    worker.update(pending)  # no exception
    assert worker.unresolved == 1
    interfering = store.offset - 1000
    store.rounds = 0  # the other writer stops
    matrix, _ = worker.fetch(batch(["A"], ["S"], [at(0, 6)], [3.0], [0], [8]))
    assert matrix[0, COL_COUNT[1]] == interfering + 2  # theirs, ours carried, this one
    state = stored_state(store, "A")
    assert sum(state.counts) == interfering + 1
