"""Labels that come after the label delay: the offline engine counts a fraud only from the
moment its label is known, as a worker that reads the label then would."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from fraudstream.features.definitions import (
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    DAY_MS,
    HOUR_MS,
    LABEL_DELAY_DAYS,
    N_FEATURES,
)
from fraudstream.features.offline import OfflineInputError, _LateLabels, compute_matrix
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fraudstream-unit-hypothesis")

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z
NEVER = -1


def at(day: int, hour: int) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS


def _frame(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    """rows of (customer, terminal, timestamp, is_fraud)."""
    return pd.DataFrame({"timestamp": [r[2] for r in rows], "customer_id": [r[0] for r in rows],
                         "terminal_id": [r[1] for r in rows], "amount": [10.0] * len(rows),
                         "is_fraud": [r[3] for r in rows]})


def test_a_late_label_counts_only_from_when_it_is_known() -> None:
    frame = _frame([("a", "T", at(0, 9), 1), ("b", "T", at(0, 10), 0),
                    ("c", "T", at(8, 9), 0), ("d", "T", at(10, 11), 0),
                    ("e", "T", at(10, 13), 0), ("f", "T", at(12, 9), 0)])
    known = np.array([at(10, 12), 0, 0, 0, 0, 0], dtype=np.int64)
    late = compute_matrix(frame, label_known_ms=known)
    on_time = compute_matrix(frame)
    risk30 = COL_TERMINAL_RISK[30]
    # Every row from day 7 on has day 0 (2 transactions, 1 fraud) in its 30-day window.
    assert on_time[2:, risk30].tolist() == [0.5, 0.5, 0.5, 0.5]
    # Known at day 10 noon: not at 11:00, from 13:00 on.
    assert late[2:, risk30].tolist() == [0.0, 0.0, 0.5, 0.5]
    assert np.array_equal(late[:, COL_TERMINAL_COUNT[30]], on_time[:, COL_TERMINAL_COUNT[30]])
    others = [c for c in range(N_FEATURES) if c not in set(COL_TERMINAL_RISK.values())]
    assert np.array_equal(late[:, others], on_time[:, others])


def test_labels_known_by_the_label_delay_change_nothing() -> None:
    frame = _frame([("a", "T", at(0, 9), 1), ("b", "U", at(1, 9), 1), ("c", "T", at(7, 0), 0),
                    ("d", "U", at(8, 23), 0)])
    known = np.array([at(LABEL_DELAY_DAYS, 0), at(1, 9), 0, 0], dtype=np.int64)
    assert np.array_equal(compute_matrix(frame, label_known_ms=known), compute_matrix(frame))


def test_known_times_must_match_the_rows() -> None:
    frame = _frame([("a", "T", at(0, 9), 1)])
    with pytest.raises(OfflineInputError, match="2 values for 1 rows"):
        compute_matrix(frame, label_known_ms=np.zeros(2, dtype=np.int64))


def test_pairs_are_compared_in_bounded_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame([("c", "T", at(d, 9), int(d < 5)) for d in range(30)])
    known = np.array([at(d + 8 + d % 3, 0) for d in range(30)], dtype=np.int64)
    whole = compute_matrix(frame, label_known_ms=known)
    monkeypatch.setattr(_LateLabels, "PAIRS_PER_STEP", 1)
    assert np.array_equal(compute_matrix(frame, label_known_ms=known), whole)


delays = st.one_of(
    st.just(NEVER),
    st.integers(0, 2 * DAY_MS),
    st.integers(0, 45 * DAY_MS),
    st.builds(lambda days, jitter: max(0, days * DAY_MS + jitter),
              st.sampled_from([6, 7, 8, 13, 14, 20, 36, 37, 38]),
              st.integers(-6 * HOUR_MS, 6 * HOUR_MS)),
)
steps = st.one_of(st.integers(0, 6 * HOUR_MS), st.integers(0, 3 * DAY_MS),
                  st.sampled_from([DAY_MS, 7 * DAY_MS, 8 * DAY_MS]))


@st.composite
def labelled_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray]:
    """Transactions in time order at a few shared terminals; each fraud's label comes
    some time after it, or never."""
    clock = T0 + draw(st.integers(0, 400 * DAY_MS))
    events = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), steps,
                                     st.booleans(), delays), min_size=3, max_size=50))
    rows, known = [], []
    for customer, terminal, step, is_fraud, delay in events:
        clock += step
        labelled = is_fraud and delay != NEVER
        rows.append((f"c{customer}", f"t{terminal}", clock, int(labelled)))
        known.append(clock + delay if labelled else 0)
    return _frame(rows), np.array(known, dtype=np.int64)


def online_with_labels_at_their_times(frame: pd.DataFrame, known: np.ndarray) -> np.ndarray:
    """One transaction at a time through the online engine; before each, every label of
    an earlier transaction known by its time is applied."""
    fs = OnlineFeatureStore(MemoryStateStore())
    ts = frame["timestamp"].to_numpy()
    frauds = np.flatnonzero(frame["is_fraud"].to_numpy())
    applied: set[int] = set()
    rows = []
    for i in range(len(frame)):
        due = [int(j) for j in frauds[np.argsort(known[frauds], kind="stable")]
               if j < i and j not in applied and known[j] <= ts[i]]
        if due:
            outcomes = fs.apply_labels(LabelBatch(
                [f"tx-{j}" for j in due], [frame["terminal_id"][j] for j in due],
                ts[due], np.ones(len(due), dtype=bool)))
            assert outcomes["applied"] + outcomes["too_old"] == len(due), outcomes
            applied.update(due)
        matrix, pending = fs.fetch(TransactionBatch(
            [frame["customer_id"][i]], [frame["terminal_id"][i]], ts[i:i + 1],
            frame["amount"].to_numpy()[i:i + 1], np.zeros(1, dtype=np.int64),
            np.array([i], dtype=np.int64)))
        fs.update(pending)
        rows.append(matrix)
    return np.vstack(rows)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(stream=labelled_streams())
def test_offline_with_label_times_equals_the_online_engine(
        stream: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, known = stream
    expected = online_with_labels_at_their_times(frame, known)
    offline = compute_matrix(frame, label_known_ms=known)
    assert np.array_equal(offline, expected), np.argwhere(offline != expected)[:5]
