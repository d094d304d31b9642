"""The online engine (over MemoryStateStore) agrees exactly with the offline engine."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from features.definitions import COUNT_MAX, DAY_MS, HOUR_MS
from features.offline import compute_matrix
from features.online import OnlineFeatureStore, TransactionBatch
from features.store import MemoryStateStore

# Hypothesis caches (it scans modules for constants while pytest collects) go to the
# temporary directory, not to .hypothesis/ in the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fraudstream-unit-hypothesis")

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
N_PARTITIONS = 2

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Stream:
    customers: list[str]
    timestamps: np.ndarray
    amounts: np.ndarray
    partitions: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.customers)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": self.timestamps, "customer_id": self.customers,
                             "amount": self.amounts})

    def batch(self, start: int, stop: int) -> TransactionBatch:
        return TransactionBatch(self.customers[start:stop], self.timestamps[start:stop],
                                self.amounts[start:stop], self.partitions[start:stop],
                                self.offsets[start:stop])


gaps = st.one_of(
    st.just(0),
    st.integers(0, HOUR_MS),
    st.integers(0, 3 * DAY_MS),
    st.integers(0, 45 * DAY_MS),
    # Near the edges of the 1-, 7- and 30-day windows and of the ring.
    st.builds(lambda days, jitter: max(0, days * DAY_MS + jitter),
              st.sampled_from([1, 6, 7, 8, 23, 29, 30, 31]),
              st.integers(-3 * HOUR_MS, 3 * HOUR_MS)),
)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """In-order events of a few customers: each customer's clock only moves forward, and
    each customer keeps to one partition (as with a keyed topic), offsets increasing."""
    n_customers = draw(st.integers(1, 4))
    clocks = [T0 + draw(st.integers(-400 * DAY_MS, 400 * DAY_MS)) for _ in range(n_customers)]
    next_offset = [draw(st.integers(0, 1_000)) for _ in range(N_PARTITIONS)]
    events = draw(st.lists(
        st.tuples(st.integers(0, n_customers - 1), gaps, st.integers(1, 500_000)),
        min_size=1, max_size=60))
    customers, timestamps, amounts, partitions, offsets = [], [], [], [], []
    for customer, gap, cents in events:
        clocks[customer] += gap
        partition = customer % N_PARTITIONS
        customers.append(f"cust-{customer}")
        timestamps.append(clocks[customer])
        amounts.append(cents / 100)
        partitions.append(partition)
        offsets.append(next_offset[partition])
        next_offset[partition] += 1
    return Stream(customers, np.array(timestamps, dtype=np.int64),
                  np.array(amounts, dtype=np.float64), np.array(partitions, dtype=np.int64),
                  np.array(offsets, dtype=np.int64))


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


def feed(fs: OnlineFeatureStore, stream: Stream,
         bounds: list[tuple[int, int]]) -> tuple[np.ndarray, list[list[bool]]]:
    rows, changed = [], []
    for start, stop in bounds:
        matrix, pending = fs.fetch(stream.batch(start, stop))
        fs.update(pending)
        rows.append(matrix)
        changed.append(pending.changed)
    return np.vstack(rows), changed


@PROPERTY
@given(stream=streams(), data=st.data())
def test_online_equals_offline_in_any_batching(stream: Stream, data: st.DataObject) -> None:
    expected = compute_matrix(stream.frame())
    bounds = data.draw(batchings(0, len(stream)), label="batches")
    online, _ = feed(OnlineFeatureStore(MemoryStateStore()), stream, bounds)
    assert online.shape == expected.shape
    assert np.array_equal(online, expected), np.argwhere(online != expected)[:5]


@PROPERTY
@given(stream=streams(), data=st.data())
def test_replaying_a_suffix_changes_nothing(stream: Stream, data: st.DataObject) -> None:
    store = MemoryStateStore()
    fs = OnlineFeatureStore(store)
    first, _ = feed(fs, stream, [(0, len(stream))])
    before = {key: value for key, (value, _) in store.data.items()}

    start = data.draw(st.integers(0, len(stream) - 1), label="suffix start")
    bounds = data.draw(batchings(start, len(stream)), label="replay batches")
    replay, changed = feed(fs, stream, bounds)

    assert not any(any(flags) for flags in changed)
    assert {key: value for key, (value, _) in store.data.items()} == before
    last_of: dict[str, int] = {}
    for i, customer in enumerate(stream.customers):
        last_of[customer] = i
    for customer, last in last_of.items():
        if last >= start:
            assert np.array_equal(replay[last - start], first[last]), customer


def test_parity_at_count_saturation() -> None:
    n = COUNT_MAX + 3
    stream = Stream(["whale"] * n + ["minnow"],
                    np.r_[np.full(n, T0 + 12 * HOUR_MS), T0 + DAY_MS].astype(np.int64),
                    np.r_[np.full(n, 5000.0), 1.0],
                    np.zeros(n + 1, dtype=np.int64), np.arange(n + 1, dtype=np.int64))
    expected = compute_matrix(stream.frame())
    online, _ = feed(OnlineFeatureStore(MemoryStateStore()), stream,
                     [(0, 1000), (1000, n - 1), (n - 1, n + 1)])
    assert np.array_equal(online, expected)
    assert expected[n - 1, 3] == COUNT_MAX
