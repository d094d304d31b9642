"""The vectorised path of OnlineFeatureStore.fetch equals the sequential definition
(features.online.apply_batch) event for event and byte for byte, on streams the offline
parity cannot cover: out-of-order days, replays, keys repeated within a batch."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch, apply_batch
from fraudstream.features.store import MemoryStateStore

DAY0 = 20_000

event = st.tuples(
    st.integers(0, 5),                      # customer
    st.integers(0, 3),                      # terminal
    # Day offsets: may go backwards, and often land on the ring sizes (30, 39) and their
    # neighbours, where a ring rolls by exactly its length.
    st.one_of(st.integers(-3, 80),
              st.sampled_from([0, 1, 2, 29, 30, 31, 38, 39, 40, 41, 68, 69, 78, 79, 80])),
    st.integers(0, DAY_MS - 1),             # time of day
    st.integers(1, 500_000),                # cents
    st.integers(0, 2),                      # partition
)


def _batches(draw: st.DrawFn) -> list[list[tuple[int, ...]]]:
    events = draw(st.lists(event, min_size=1, max_size=80))
    offsets: dict[int, int] = {}
    stream = []
    for customer, terminal, day, tod, cents, partition in events:
        offsets[partition] = offsets.get(partition, -1) + 1
        stream.append((customer, terminal, DAY0 + day, tod, cents, partition,
                       offsets[partition]))
    if draw(st.booleans()):  # replay a random slice, as after a crash
        lo = draw(st.integers(0, len(stream) - 1))
        stream += stream[lo:lo + draw(st.integers(1, 10))]
    cuts = sorted(draw(st.lists(st.integers(1, len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _batch(events: list[tuple[int, ...]]) -> TransactionBatch:
    return TransactionBatch(
        [f"c{e[0]}" for e in events], [f"t{e[1]}" for e in events],
        np.array([e[2] * DAY_MS + e[3] for e in events], dtype=np.int64),
        np.array([e[4] / 100 for e in events], dtype=np.float64),
        np.array([e[5] for e in events], dtype=np.int64),
        np.array([e[6] for e in events], dtype=np.int64))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_vectorised_fetch_equals_the_sequential_definition(data: st.DataObject) -> None:
    batches = _batches(data.draw)
    store = MemoryStateStore()
    online = OnlineFeatureStore(store, prefix="p")
    customers: dict[str, customer_state.CustomerState] = {}
    terminals: dict[str, terminal_state.TerminalState] = {}
    for events in batches:
        batch = _batch(events)
        matrix, pending = online.fetch(batch)
        online.update(pending)

        c_ids = list(dict.fromkeys(batch.customer_ids))
        t_ids = list(dict.fromkeys(batch.terminal_ids))
        cstates = [customers.setdefault(c, customer_state.CustomerState()) for c in c_ids]
        tstates = [terminals.setdefault(t, terminal_state.TerminalState()) for t in t_ids]
        expected, _, _ = apply_batch(
            cstates, np.array([c_ids.index(c) for c in batch.customer_ids]),
            tstates, np.array([t_ids.index(t) for t in batch.terminal_ids]), batch)
        assert np.array_equal(matrix, expected)

    for cid, state in customers.items():
        stored = store.get_many([online.customer_key(cid)])[0]
        assert stored == customer_state.stored_value(customer_state.encode(state), b""), cid
    for tid, state in terminals.items():
        stored = store.get_many([online.terminal_key(tid)])[0]
        assert stored == terminal_state.encode(state), tid
