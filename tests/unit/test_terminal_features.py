"""Terminal features by hand: online (with labels) equals offline equals the hand values."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from fraudstream.features.definitions import (
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    DAY_MS,
    HOUR_MS,
    LABEL_DELAY_DAYS,
    RING_DAYS,
)
from fraudstream.features.offline import compute_matrix
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
WINDOWS = (1, 7, 30)

# (transaction id, customer, terminal, day, hour, is_fraud), in arrival (= time) order.
EVENTS = [
    ("a", "c1", "T", 0, 9, True),
    ("b", "c2", "T", 0, 10, False),
    ("c", "c1", "T", 1, 9, True),
    ("d", "c2", "T", 3, 9, False),
    ("e", "c1", "T", 3, 10, True),
    ("u", "c3", "U", 3, 11, True),  # another terminal: never in T's windows
    ("g", "c2", "T", 8, 9, False),
    ("f", "c1", "T", 10, 9, True),
    ("h", "c2", "T", 40, 9, False),
    ("i", "c1", "T", 44, 9, False),
    ("j", "c2", "T", 45, 9, False),
]
PARTITION = {"c1": 0, "c2": 1, "c3": 0}

# Worked out by hand: (counts 1/7/30d, risks 1/7/30d). A transaction on day d looks at
# days d-7-W+1 .. d-7 of its terminal.
HAND = {
    # days 0..3 look at days <= -4: nothing, and risk is 0 (not NaN) without transactions
    "a": ((0, 0, 0), (0.0, 0.0, 0.0)),
    "b": ((0, 0, 0), (0.0, 0.0, 0.0)),
    "c": ((0, 0, 0), (0.0, 0.0, 0.0)),
    "d": ((0, 0, 0), (0.0, 0.0, 0.0)),
    "e": ((0, 0, 0), (0.0, 0.0, 0.0)),
    "u": ((0, 0, 0), (0.0, 0.0, 0.0)),
    # day 8: 1d = day 1 (c, fraud); 7d = days -5..1 and 30d = days -28..1 (a, b, c)
    "g": ((1, 3, 3), (1.0, 2 / 3, 2 / 3)),
    # day 10: 1d = day 3 (d, e: one fraud); 7d = days -3..3 and 30d (a..e, 3 frauds)
    "f": ((2, 5, 5), (0.5, 0.6, 0.6)),
    # day 40: 1d = day 33 and 7d = days 27..33 are empty; 30d = days 4..33 (g, f)
    "h": ((0, 0, 2), (0.0, 0.0, 0.5)),
    # day 44: 30d = days 8..37 (g, f)
    "i": ((0, 0, 2), (0.0, 0.0, 0.5)),
    # day 45: 30d = days 9..38 (f only)
    "j": ((0, 0, 1), (0.0, 0.0, 1.0)),
}


def ts(day: int, hour: int) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": [ts(e[3], e[4]) for e in EVENTS],
        "customer_id": [e[1] for e in EVENTS],
        "terminal_id": [e[2] for e in EVENTS],
        "amount": [float(k + 1) for k in range(len(EVENTS))],
        "is_fraud": [int(e[5]) for e in EVENTS],
    })


def transaction_batch(positions: list[int]) -> TransactionBatch:
    offsets: dict[int, int] = {}
    partitions, offs = [], []
    for k, event in enumerate(EVENTS):
        p = PARTITION[event[1]]
        offsets[p] = offsets.get(p, -1) + 1
        if k in positions:
            partitions.append(p)
            offs.append(offsets[p])
    return TransactionBatch(
        [EVENTS[k][1] for k in positions], [EVENTS[k][2] for k in positions],
        np.array([ts(EVENTS[k][3], EVENTS[k][4]) for k in positions], dtype=np.int64),
        np.array([float(k + 1) for k in positions]), np.array(partitions, dtype=np.int64),
        np.array(offs, dtype=np.int64))


def label_batch(positions: list[int]) -> LabelBatch:
    return LabelBatch(
        [EVENTS[k][0] for k in positions], [EVENTS[k][2] for k in positions],
        np.array([ts(EVENTS[k][3], EVENTS[k][4]) for k in positions], dtype=np.int64),
        np.array([EVENTS[k][5] for k in positions], dtype=bool))


def online(groups: list[list[int]]) -> np.ndarray:
    """Feed the batches in order; before each, the labels of every earlier transaction
    whose day is at least the label delay before the batch's first day."""
    fs = OnlineFeatureStore(MemoryStateStore())
    labelled: set[int] = set()
    rows = []
    for group in groups:
        first_day = min(EVENTS[k][3] for k in group)
        due = [k for k in range(min(group)) if k not in labelled
               and EVENTS[k][3] <= first_day - LABEL_DELAY_DAYS]
        if due:
            outcomes = fs.apply_labels(label_batch(due))
            frauds = sum(EVENTS[k][5] for k in due)
            # Counter equality treats a missing outcome as zero.
            assert outcomes == Counter(applied=frauds, legit=len(due) - frauds)
            labelled.update(due)
        matrix, pending = fs.fetch(transaction_batch(group))
        fs.update(pending)
        rows.append(matrix)
    return np.vstack(rows)


def hand_columns(name: str) -> list[float]:
    counts, risks = HAND[name]
    return [*counts, *risks]


def terminal_columns(row: np.ndarray) -> list[float]:
    return ([float(row[COL_TERMINAL_COUNT[w]]) for w in WINDOWS]
            + [float(row[COL_TERMINAL_RISK[w]]) for w in WINDOWS])


def test_offline_terminal_features_equal_the_hand_values() -> None:
    matrix = compute_matrix(frame())
    for k, event in enumerate(EVENTS):
        assert terminal_columns(matrix[k]) == hand_columns(event[0]), event[0]


def test_online_one_event_at_a_time_equals_hand_and_offline() -> None:
    matrix = online([[k] for k in range(len(EVENTS))])
    for k, event in enumerate(EVENTS):
        assert terminal_columns(matrix[k]) == hand_columns(event[0]), event[0]
    assert np.array_equal(matrix, compute_matrix(frame()))


def test_online_one_batch_per_day_equals_offline() -> None:
    days: dict[int, list[int]] = {}
    for k, event in enumerate(EVENTS):
        days.setdefault(event[3], []).append(k)
    assert np.array_equal(online(list(days.values())), compute_matrix(frame()))


def test_without_labels_online_counts_match_but_risk_stays_zero() -> None:
    fs = OnlineFeatureStore(MemoryStateStore())
    matrix, _ = fs.fetch(transaction_batch(list(range(len(EVENTS)))))
    for k, event in enumerate(EVENTS):
        counts, _ = HAND[event[0]]
        assert terminal_columns(matrix[k]) == [*counts, 0.0, 0.0, 0.0], event[0]
    unlabelled = compute_matrix(frame().drop(columns=["is_fraud"]))
    assert np.array_equal(matrix, unlabelled)


def test_a_minute_of_cross_partition_skew_at_midnight_keeps_online_equal_to_offline() -> None:
    # Once the terminal has seen a transaction of day d+1 (another partition, a minute past
    # midnight), a transaction of day d arriving next must still count day d-36, the oldest
    # day of its 30-day window, as offline does.
    d = RING_DAYS + LABEL_DELAY_DAYS - 1  # day 36: its 30-day window is days 0 .. 29
    midnight = T0 + (d + 1) * DAY_MS
    rows = [  # (customer, timestamp, partition, offset), all at terminal T, arrival order
        ("early", T0 + 12 * HOUR_MS, 0, 0),  # day 0
        ("b", midnight + 60_000, 1, 0),  # day 37, 00:01
        ("c", midnight - 60_000, 0, 1),  # day 36, 23:59, delivered a bit later
    ]
    frame = pd.DataFrame({"timestamp": [r[1] for r in rows],
                          "customer_id": [r[0] for r in rows],
                          "terminal_id": ["T"] * 3, "amount": [1.0] * 3})
    expected = compute_matrix(frame)
    # Offline: c (day 36) looks at days 0..29, which hold the day-0 transaction.
    assert expected[2, COL_TERMINAL_COUNT[30]] == 1
    batch = TransactionBatch([r[0] for r in rows], ["T"] * 3,
                             np.array([r[1] for r in rows], dtype=np.int64), np.ones(3),
                             np.array([r[2] for r in rows], dtype=np.int64),
                             np.array([r[3] for r in rows], dtype=np.int64))
    matrix, _ = OnlineFeatureStore(MemoryStateStore()).fetch(batch)
    assert matrix[2, COL_TERMINAL_COUNT[30]] == 1
