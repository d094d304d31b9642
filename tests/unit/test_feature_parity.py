"""The online engine (over MemoryStateStore) agrees exactly with the offline engine."""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from fraudstream.features.definitions import (
    COL_TERMINAL_COUNT,
    COUNT_MAX,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    LABEL_DELAY_DAYS,
    N_FEATURES,
    RING_DAYS,
    TERMINAL_RING_DAYS,
)
from fraudstream.features.offline import compute_matrix
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore

# Hypothesis caches (it scans modules for constants while pytest collects) go to the
# temporary directory, not to .hypothesis/ in the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fraudstream-unit-hypothesis")

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
N_PARTITIONS = 2
TERMINAL_COLUMNS = [c for c, name in enumerate(FEATURE_NAMES) if name.startswith("terminal_")]
CUSTOMER_COLUMNS = [c for c in range(N_FEATURES) if c not in TERMINAL_COLUMNS]

# A terminal's 30-day window reaches back RING_DAYS + LABEL_DELAY_DAYS days (37); its ring
# holds TERMINAL_RING_DAYS days (39). Gaps around both edges, one day either side.
TERMINAL_EDGES = [RING_DAYS + LABEL_DELAY_DAYS + k for k in (-1, 0, 1)]
RING_EDGES = [TERMINAL_RING_DAYS + k for k in (-1, 0, 1)]
EDGE_DAYS = sorted({*TERMINAL_EDGES, *RING_EDGES})

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Stream:
    customers: list[str]
    terminals: list[str]
    timestamps: np.ndarray
    amounts: np.ndarray
    partitions: np.ndarray
    offsets: np.ndarray
    frauds: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.customers)

    @property
    def days(self) -> np.ndarray:
        return self.timestamps // DAY_MS

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": self.timestamps, "customer_id": self.customers,
                             "terminal_id": self.terminals, "amount": self.amounts,
                             "is_fraud": self.frauds.astype(np.int64)})

    def batch(self, start: int, stop: int) -> TransactionBatch:
        return TransactionBatch(self.customers[start:stop], self.terminals[start:stop],
                                self.timestamps[start:stop], self.amounts[start:stop],
                                self.partitions[start:stop], self.offsets[start:stop])

    def labels(self, positions: list[int]) -> LabelBatch:
        return LabelBatch([f"tx-{i}" for i in positions],
                          [self.terminals[i] for i in positions],
                          self.timestamps[positions], self.frauds[positions])


def build(rows: list[tuple[int, int, int, int, bool]]) -> Stream:
    """rows of (customer, terminal, timestamp, cents, is_fraud) in arrival order; each
    customer keeps to one partition (as with a keyed topic), offsets increasing."""
    next_offset = [0] * N_PARTITIONS
    customers, terminals, partitions, offsets = [], [], [], []
    for customer, terminal, _, _, _ in rows:
        partition = customer % N_PARTITIONS
        customers.append(f"cust-{customer}")
        terminals.append(f"term-{terminal}")
        partitions.append(partition)
        offsets.append(next_offset[partition])
        next_offset[partition] += 1
    return Stream(customers, terminals, np.array([r[2] for r in rows], dtype=np.int64),
                  np.array([r[3] / 100 for r in rows], dtype=np.float64),
                  np.array(partitions, dtype=np.int64), np.array(offsets, dtype=np.int64),
                  np.array([r[4] for r in rows], dtype=bool))


gaps = st.one_of(
    st.just(0),
    st.integers(0, HOUR_MS),
    st.integers(0, 3 * DAY_MS),
    st.integers(0, 45 * DAY_MS),
    # Near the edges of the 1-, 7- and 30-day windows, of the rings and of the label delay.
    st.builds(lambda days, jitter: max(0, days * DAY_MS + jitter),
              st.sampled_from([1, 6, 7, 8, 23, 29, 30, 31, *EDGE_DAYS]),
              st.integers(-3 * HOUR_MS, 3 * HOUR_MS)),
)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """In-order events of a few customers, each on its own clock (customers interleave out
    of time order) and at its own terminal, without labels."""
    n_customers = draw(st.integers(1, 4))
    clocks = [T0 + draw(st.integers(-400 * DAY_MS, 400 * DAY_MS)) for _ in range(n_customers)]
    events = draw(st.lists(
        st.tuples(st.integers(0, n_customers - 1), gaps, st.integers(1, 500_000)),
        min_size=1, max_size=60))
    rows = []
    for customer, gap, cents in events:
        clocks[customer] += gap
        rows.append((customer, customer, clocks[customer], cents, False))
    stream = build(rows)
    # Offsets start anywhere, not at 0.
    stream.offsets += np.array([draw(st.integers(0, 1_000))
                                for _ in range(N_PARTITIONS)])[stream.partitions]
    return stream


# Shorter steps for one shared clock, so terminal windows fill up and labels matter.
shared_gaps = st.one_of(
    st.integers(0, HOUR_MS),
    st.integers(0, 2 * DAY_MS),
    st.builds(lambda days, jitter: max(0, days * DAY_MS + jitter),
              st.sampled_from([1, 6, 7, 8, 29, 30, 31, *EDGE_DAYS]),
              st.integers(-3 * HOUR_MS, 3 * HOUR_MS)),
)


@st.composite
def shared_streams(draw: st.DrawFn) -> Stream:
    """A few customers paying at a few shared terminals, in time order, with random frauds."""
    n_customers = draw(st.integers(1, 4))
    n_terminals = draw(st.integers(1, 3))
    clock = T0 + draw(st.integers(-400 * DAY_MS, 400 * DAY_MS))
    events = draw(st.lists(
        st.tuples(st.integers(0, n_customers - 1), st.integers(0, n_terminals - 1), shared_gaps,
                  st.integers(1, 500_000), st.booleans()),
        min_size=4, max_size=60))
    rows = []
    for customer, terminal, gap, cents, is_fraud in events:
        clock += gap
        rows.append((customer, terminal, clock, cents, is_fraud))
    return build(rows)


@st.composite
def batchings(draw: st.DrawFn, start: int, stop: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) batches of 1..8 events covering start..stop."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=stop - start + 1))
    bounds, position = [], start
    for size in sizes:
        if position >= stop:
            break
        bounds.append((position, min(stop, position + size)))
        position += size
    if position < stop:
        bounds.append((position, stop))
    return bounds


def within_label_delay(stream: Stream, bounds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split batches so none spans LABEL_DELAY_DAYS: a transaction's terminal window then
    only holds days of earlier batches, whose labels can be applied before it."""
    days = stream.days
    out = []
    for start, stop in bounds:
        first = start
        for i in range(start + 1, stop):
            if days[i] - days[first] >= LABEL_DELAY_DAYS:
                out.append((first, i))
                first = i
        out.append((first, stop))
    return out


def feed(fs: OnlineFeatureStore, stream: Stream,
         bounds: list[tuple[int, int]]) -> tuple[np.ndarray, list[list[bool]]]:
    rows, changed = [], []
    for start, stop in bounds:
        matrix, pending = fs.fetch(stream.batch(start, stop))
        fs.update(pending)
        rows.append(matrix)
        changed.append([entry.changed for entry in pending.entries])
    return np.vstack(rows), changed


def feed_with_labels(fs: OnlineFeatureStore, stream: Stream, bounds: list[tuple[int, int]],
                     data: st.DataObject) -> np.ndarray:
    """Before each batch, apply (in a random order, with random redeliveries) the labels of
    every earlier transaction whose day is <= the batch's last day - LABEL_DELAY_DAYS."""
    days = stream.days
    sent: list[int] = []
    rows = []
    for start, stop in bounds:
        last_day = int(days[stop - 1])
        new = [i for i in range(start) if i not in sent
               and days[i] <= last_day - LABEL_DELAY_DAYS]
        again = data.draw(st.lists(st.sampled_from(sent), max_size=4) if sent
                          else st.just([]), label="redelivered")
        order = data.draw(st.permutations(new + again), label="label order")
        if order:
            outcomes = fs.apply_labels(stream.labels(order))
            new_frauds = int(stream.frauds[new].sum())
            again_frauds = int(stream.frauds[again].sum()) if again else 0
            assert outcomes["applied"] == new_frauds
            assert outcomes["legit"] == len(order) - new_frauds - again_frauds
            assert outcomes["duplicate"] + outcomes["too_old"] == again_frauds
            assert outcomes["unknown"] == 0
            sent += new
        matrix, pending = fs.fetch(stream.batch(start, stop))
        fs.update(pending)
        rows.append(matrix)
    return np.vstack(rows)


def stored(store: MemoryStateStore) -> dict[bytes, bytes]:
    return {key: value for key, (value, _) in store.data.items()}


@PROPERTY
@given(stream=streams(), data=st.data())
def test_online_equals_offline_in_any_batching(stream: Stream, data: st.DataObject) -> None:
    expected = compute_matrix(stream.frame())
    bounds = data.draw(batchings(0, len(stream)), label="batches")
    online, _ = feed(OnlineFeatureStore(MemoryStateStore()), stream, bounds)
    assert online.shape == expected.shape == (len(stream), N_FEATURES)
    assert np.array_equal(online, expected), np.argwhere(online != expected)[:5]


@PROPERTY
@given(stream=shared_streams(), data=st.data())
def test_online_with_labels_equals_offline_at_shared_terminals(
        stream: Stream, data: st.DataObject) -> None:
    expected = compute_matrix(stream.frame())
    bounds = within_label_delay(stream, data.draw(batchings(0, len(stream)), label="batches"))
    online = feed_with_labels(OnlineFeatureStore(MemoryStateStore()), stream, bounds, data)
    assert online.shape == expected.shape == (len(stream), N_FEATURES)
    assert np.array_equal(online, expected), np.argwhere(online != expected)[:5]


@PROPERTY
@given(stream=streams(), data=st.data())
def test_replaying_a_suffix_changes_nothing(stream: Stream, data: st.DataObject) -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    first, _ = feed(fs, stream, [(0, len(stream))])
    before = stored(store)

    start = data.draw(st.integers(0, len(stream) - 1), label="suffix start")
    bounds = data.draw(batchings(start, len(stream)), label="replay batches")
    replay, changed = feed(fs, stream, bounds)

    assert not any(any(flags) for flags in changed)
    assert stored(store) == before
    last_of: dict[str, int] = {}
    for i, customer in enumerate(stream.customers):
        last_of[customer] = i
    for customer, last in last_of.items():
        if last >= start:
            assert np.array_equal(replay[last - start], first[last]), customer


@PROPERTY
@given(stream=shared_streams(), data=st.data())
def test_replaying_a_suffix_with_shared_terminals_and_labels_changes_nothing(
        stream: Stream, data: st.DataObject) -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    bounds = within_label_delay(stream, data.draw(batchings(0, len(stream)), label="batches"))
    first = feed_with_labels(fs, stream, bounds, data)
    before = stored(store)
    assert any(key.startswith(b"fs:t:") for key in before)

    start = data.draw(st.integers(0, len(stream) - 1), label="suffix start")
    replay_bounds = data.draw(batchings(start, len(stream)), label="replay batches")
    replay, changed = feed(fs, stream, replay_bounds)

    assert not any(any(flags) for flags in changed)
    assert stored(store) == before  # every customer and terminal value, byte for byte
    # The last event of a customer (of a terminal) scores its customer (terminal) columns
    # exactly as the first time: nothing after it has been counted in them.
    last_customer: dict[str, int] = {}
    last_terminal: dict[str, int] = {}
    for i in range(len(stream)):
        last_customer[stream.customers[i]] = i
        last_terminal[stream.terminals[i]] = i
    for last in last_customer.values():
        if last >= start:
            assert np.array_equal(replay[last - start, CUSTOMER_COLUMNS],
                                  first[last, CUSTOMER_COLUMNS])
    for last in last_terminal.values():
        if last >= start:
            assert np.array_equal(replay[last - start, TERMINAL_COLUMNS],
                                  first[last, TERMINAL_COLUMNS])


def test_parity_at_count_saturation() -> None:
    n = COUNT_MAX + 3
    rows = ([(0, 0, T0 + 12 * HOUR_MS, 500_000, False)] * n
            + [(1, 0, T0 + LABEL_DELAY_DAYS * DAY_MS, 100, False)])
    stream = build(rows)
    stream.partitions[:] = 0
    stream.offsets[:] = np.arange(n + 1)
    assert stream.customers[0] == "cust-0" and stream.customers[n] == "cust-1"
    expected = compute_matrix(stream.frame())
    online, _ = feed(OnlineFeatureStore(MemoryStateStore()), stream,
                     [(0, n // 2), (n // 2, n - 1), (n - 1, n + 1)])
    assert np.array_equal(online, expected)
    assert expected[n - 1, 3] == COUNT_MAX
    # The terminal's day counts do not saturate at the customers' one-byte limit.
    assert expected[n, COL_TERMINAL_COUNT[1]] == n > COUNT_MAX


def test_parity_of_the_history_columns_across_the_ring() -> None:
    """Means before the last 7 and 14 days: filled, emptied by a 20-day pause, filled
    again, in batches of every size."""
    rng = np.random.default_rng(4)
    days = [*range(0, 25), *range(45, 80)]
    rows = [(c, c, T0 + d * DAY_MS + int(rng.integers(0, DAY_MS)),
             int(rng.integers(1, 50_000)), False)
            for d in days for c in (0, 1) for _ in range(int(rng.integers(0, 3)))]
    rows.sort(key=lambda r: r[2])
    stream = build(rows)
    expected = compute_matrix(stream.frame())
    sizes = itertools.cycle([1, 5, 2, 40, 3])
    bounds, start = [], 0
    while start < len(stream):
        stop = min(len(stream), start + next(sizes))
        bounds.append((start, stop))
        start = stop
    online, _ = feed(OnlineFeatureStore(MemoryStateStore()), stream, bounds)
    assert np.array_equal(online, expected)
    for name in ("customer_mean_7d_over_mean_before_7d",
                 "customer_mean_1d_over_mean_before_14d"):
        column = expected[:, FEATURE_NAMES.index(name)]
        assert (column > 0).sum() > 20 and (column == 0).sum() > 10, name


def test_labels_used_by_the_parity_property_all_count() -> None:
    # Sanity check of the label schedule on a fixed stream: day 0 fraud, scored on day 7.
    stream = build([(0, 0, T0, 100, True), (1, 0, T0 + 7 * DAY_MS, 100, False)])
    fs = OnlineFeatureStore(MemoryStateStore())
    _, pending = fs.fetch(stream.batch(0, 1))
    fs.update(pending)
    assert fs.apply_labels(stream.labels([0, 1])) == Counter(applied=1, legit=1)
    row = fs.fetch(stream.batch(1, 2))[0][0]
    assert row[COL_TERMINAL_COUNT[1]] == 1
    assert np.array_equal(row, compute_matrix(stream.frame())[1])
