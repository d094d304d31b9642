"""With transaction ids, the compiled kernel behind OnlineFeatureStore.fetch equals the
pure-Python definitions event for event and byte for byte: recent_ids.find_duplicates
names the duplicates (on the stored states), every other event is applied in order by
the sequential definition (online.apply_batch), a duplicate is scored as if new on the
state just before it and counted nowhere, and a changed customer's value carries its
recent digests advanced by its counted events (recent_ids.remembered)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.features import customer_state, recent_ids, terminal_state
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch, apply_batch
from fraudstream.features.store import MemoryStateStore

DAY0 = 20_000

event = st.tuples(
    st.integers(0, 4),        # customer
    st.integers(0, 3),        # terminal
    st.integers(-2, 40),      # day offset
    st.integers(0, DAY_MS - 1),
    st.integers(1, 500_000),  # cents
    st.integers(0, 2),        # partition
    st.integers(0, 6),        # transaction id: few, so they repeat
)


def _batches(draw: st.DrawFn) -> list[list[tuple[int, ...]]]:
    events = draw(st.lists(event, min_size=1, max_size=60))
    offsets: dict[int, int] = {}
    stream = []
    for customer, terminal, day, tod, cents, partition, tx in events:
        offsets[partition] = offsets.get(partition, -1) + 1
        stream.append((customer, terminal, DAY0 + day, tod, cents, partition,
                       offsets[partition], tx))
    if draw(st.booleans()):  # replay a slice, as after a crash
        lo = draw(st.integers(0, len(stream) - 1))
        stream += stream[lo:lo + draw(st.integers(1, 10))]
    cuts = sorted(draw(st.lists(st.integers(1, len(stream)), max_size=5)))
    return [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)]) if b > a]


def _batch(events: list[tuple[int, ...]]) -> TransactionBatch:
    return TransactionBatch(
        [f"c{e[0]}" for e in events], [f"t{e[1]}" for e in events],
        np.array([e[2] * DAY_MS + e[3] for e in events], dtype=np.int64),
        np.array([e[4] / 100 for e in events], dtype=np.float64),
        np.array([e[5] for e in events], dtype=np.int64),
        np.array([e[6] for e in events], dtype=np.int64),
        [f"tx-{e[7]}-ü" if e[7] == 6 else f"tx-{e[7]}" for e in events])


class Reference:
    """Every customer's and terminal's state, and the customers' stored digests, kept by
    the pure-Python definitions."""

    def __init__(self) -> None:
        self.customers: dict[str, customer_state.CustomerState] = {}
        self.recent: dict[str, bytes] = {}
        self.terminals: dict[str, terminal_state.TerminalState] = {}

    def batch(self, batch: TransactionBatch) -> tuple[np.ndarray, list[int]]:
        ids = recent_ids.digests(batch.transaction_ids)
        c_ids = list(dict.fromkeys(batch.customer_ids))
        c_index = np.array([c_ids.index(c) for c in batch.customer_ids])
        stored = [customer_state.encode(self.customers[c]) if c in self.customers else None
                  for c in c_ids]
        duplicates = recent_ids.find_duplicates(
            batch.partitions, batch.offsets, c_index, stored,
            [self.recent.get(c, b"") for c in c_ids], ids)
        rows, changed, counted = [], set(), {c: [] for c in c_ids}
        for i in range(len(batch)):
            c, t = batch.customer_ids[i], batch.terminal_ids[i]
            state = self.customers.setdefault(c, customer_state.CustomerState())
            terminal = self.terminals.setdefault(t, terminal_state.TerminalState())
            if i in duplicates:
                state, terminal = copy.deepcopy(state), copy.deepcopy(terminal)
            else:
                counted[c].append(ids[i])
            row, c_changed, _ = apply_batch([state], np.zeros(1, np.int64), [terminal],
                                            np.zeros(1, np.int64), _one(batch, i))
            rows.append(row[0])
            if c_changed[0] and i not in duplicates:
                changed.add(c)
        for c in changed:
            self.recent[c] = recent_ids.remembered(self.recent.get(c, b""), counted[c])
        return np.asarray(rows), duplicates

    def stored(self, customer: str) -> bytes:
        return customer_state.stored_value(customer_state.encode(self.customers[customer]),
                                           self.recent[customer])


def _one(batch: TransactionBatch, i: int) -> TransactionBatch:
    return TransactionBatch([batch.customer_ids[i]], [batch.terminal_ids[i]],
                            batch.timestamps_ms[i:i + 1], batch.amounts[i:i + 1],
                            batch.partitions[i:i + 1], batch.offsets[i:i + 1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fetch_with_ids_equals_the_definitions(data: st.DataObject) -> None:
    store = MemoryStateStore()
    online = OnlineFeatureStore(store, prefix="p")
    reference = Reference()
    for events in _batches(data.draw):
        batch = _batch(events)
        matrix, pending = online.fetch(batch)
        online.update(pending)
        expected, duplicates = reference.batch(batch)
        assert pending.duplicates == duplicates
        assert np.array_equal(matrix, expected)
    for cid in reference.recent:
        assert store.get_many([online.customer_key(cid)])[0] == reference.stored(cid), cid
    for tid, state in reference.terminals.items():
        stored = store.get_many([online.terminal_key(tid)])[0]
        assert stored == (terminal_state.encode(state) if stored is not None else None), tid
