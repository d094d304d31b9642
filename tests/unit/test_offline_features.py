"""features.offline: hand-computed feature values and input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.definitions import (
    CENTS_MAX,
    COL_AMOUNT,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_NIGHT,
    COL_WEEKEND,
    COUNT_MAX,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
)
from features.offline import OfflineInputError, compute_features, compute_matrix

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z, a Sunday
CAP_S = 30 * 86_400.0


def at(day: int, hour: int, minute: int = 0) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS + minute * 60_000


def row(matrix: np.ndarray, i: int) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, matrix[i].tolist(), strict=True))


def expected(amount: float, weekend: float, night: float, counts: tuple[int, int, int],
             avgs: tuple[float, float, float], gap_s: float) -> dict[str, float]:
    return {
        "amount": amount, "is_weekend": weekend, "is_night": night,
        "customer_nb_tx_1d": counts[0], "customer_nb_tx_7d": counts[1],
        "customer_nb_tx_30d": counts[2], "customer_avg_amount_1d": avgs[0],
        "customer_avg_amount_7d": avgs[1], "customer_avg_amount_30d": avgs[2],
        "customer_seconds_since_prev": gap_s,
    }


# Arrival order. Customer A: day 0 (twice), day 5, day 7; customer B: day 2.
HAND_FRAME = pd.DataFrame({
    "timestamp": [at(0, 10), at(0, 11), at(2, 3), at(5, 8), at(7, 12)],
    "customer_id": ["A", "A", "B", "A", "A"],
    "amount": [10.00, 20.50, 100.00, 3.25, 1.00],
})

HAND_EXPECTED = [
    # A on Sunday 10:00: first transaction, gap capped at 30 days
    expected(10.0, 1.0, 0.0, (1, 1, 1), (10.0, 10.0, 10.0), CAP_S),
    # A on Sunday 11:00: same day, one hour later
    expected(20.5, 1.0, 0.0, (2, 2, 2), (15.25, 15.25, 15.25), 3600.0),
    # B on Tuesday 03:00 (night), first transaction
    expected(100.0, 0.0, 1.0, (1, 1, 1), (100.0, 100.0, 100.0), CAP_S),
    # A on Friday 08:00: 7d window (days -1..5) holds all three, 33.75 / 3
    # gap: day 0 11:00 -> day 5 08:00 = 5 days - 3 h = 421_200 s
    expected(3.25, 0.0, 0.0, (1, 3, 3), (3.25, 11.25, 11.25), 421_200.0),
    # A on Sunday 12:00 of day 7: 7d window (days 1..7) holds days 5 and 7, 4.25 / 2;
    # 30d holds all four, 34.75 / 4. gap: day 5 08:00 -> day 7 12:00 = 187_200 s
    expected(1.0, 1.0, 0.0, (1, 2, 4), (1.0, 2.125, 8.6875), 187_200.0),
]


def test_hand_computed_values() -> None:
    matrix = compute_matrix(HAND_FRAME)
    assert matrix.shape == (5, len(FEATURE_NAMES))
    for i, want in enumerate(HAND_EXPECTED):
        assert row(matrix, i) == want, f"row {i}"


def test_compute_features_keeps_the_frame_index_and_names() -> None:
    frame = HAND_FRAME.set_axis([10, 20, 30, 40, 50])
    features = compute_features(frame)
    assert list(features.columns) == list(FEATURE_NAMES)
    assert list(features.index) == [10, 20, 30, 40, 50]
    assert features.loc[40, "customer_nb_tx_7d"] == 3.0


def test_result_does_not_depend_on_other_customers_interleaving() -> None:
    a_only = HAND_FRAME[HAND_FRAME["customer_id"] == "A"].reset_index(drop=True)
    full = compute_matrix(HAND_FRAME)
    alone = compute_matrix(a_only)
    assert np.array_equal(full[[0, 1, 3, 4]], alone)


def test_thirty_day_window_excludes_day_minus_thirty() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 12), at(1, 12), at(30, 12), at(31, 0)],
        "customer_id": ["A"] * 4,
        "amount": [1.0, 2.0, 4.0, 8.0],
    })
    m = compute_matrix(frame)
    # Day 30: window days 1..30 holds days 1 and 30.
    assert m[2, COL_COUNT[30]] == 2 and m[2, COL_AVG[30]] == 3.0
    assert m[2, COL_COUNT[7]] == 1 and m[2, COL_AVG[7]] == 4.0
    assert m[2, COL_GAP] == 29 * 86_400.0
    # Day 31: window days 2..31 holds days 30 and 31.
    assert m[3, COL_COUNT[30]] == 2 and m[3, COL_AVG[30]] == 6.0
    assert m[3, COL_COUNT[1]] == 1 and m[3, COL_AVG[1]] == 8.0
    assert m[3, COL_GAP] == 12 * 3600.0


def test_gap_is_capped_and_equal_timestamps_give_zero() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 1), at(45, 1), at(45, 1)],
        "customer_id": [7, 7, 7],
        "amount": [1.0, 1.0, 1.0],
    })
    m = compute_matrix(frame)
    assert m[:, COL_GAP].tolist() == [CAP_S, CAP_S, 0.0]
    assert m[:, COL_COUNT[30]].tolist() == [1.0, 1.0, 2.0]


def test_numeric_and_string_ids_of_the_same_customer_are_one_customer() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 9), at(0, 10)],
        "customer_id": pd.Series([42, "42"], dtype=object),
        "amount": [1.0, 3.0],
    })
    m = compute_matrix(frame)
    assert m[1, COL_COUNT[1]] == 2 and m[1, COL_AVG[1]] == 2.0


def test_calendar_columns_and_amount_are_passed_through() -> None:
    m = compute_matrix(HAND_FRAME)
    assert m[:, COL_AMOUNT].tolist() == [10.0, 20.5, 100.0, 3.25, 1.0]
    assert m[:, COL_WEEKEND].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert m[:, COL_NIGHT].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_daily_totals_saturate() -> None:
    n = COUNT_MAX + 5
    frame = pd.DataFrame({
        "timestamp": np.full(n, at(3, 12), dtype=np.int64),
        "customer_id": ["big"] * n,
        "amount": np.full(n, 5000.0),
    })
    m = compute_matrix(frame)
    # Cents saturate after CENTS_MAX // 500_000 + 1 events, counts at COUNT_MAX.
    k = CENTS_MAX // 500_000
    assert m[k - 1, COL_AVG[1]] == 5000.0
    assert m[k, COL_AVG[1]] == CENTS_MAX / (k + 1) / 100.0
    assert m[-1, COL_COUNT[1]] == COUNT_MAX
    assert m[-1, COL_COUNT[30]] == COUNT_MAX
    assert m[-1, COL_AVG[30]] == CENTS_MAX / COUNT_MAX / 100.0


def test_empty_frame_gives_an_empty_matrix() -> None:
    frame = pd.DataFrame({"timestamp": [], "customer_id": [], "amount": []})
    assert compute_matrix(frame).shape == (0, len(FEATURE_NAMES))


@pytest.mark.parametrize("drop", [["timestamp"], ["customer_id"], ["amount"],
                                  ["timestamp", "amount"]])
def test_missing_columns_are_named(drop: list[str]) -> None:
    with pytest.raises(OfflineInputError) as caught:
        compute_matrix(HAND_FRAME.drop(columns=drop))
    message = str(caught.value)
    assert message.startswith("missing columns:")
    for column in drop:
        assert column in message


def test_a_customer_going_backwards_in_time_is_refused() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(1, 10), at(0, 9), at(1, 9)],
        "customer_id": ["A", "B", "A"],
        "amount": [1.0, 1.0, 1.0],
    })
    with pytest.raises(OfflineInputError, match="backwards"):
        compute_matrix(frame)


def test_different_customers_may_interleave_out_of_time_order() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(1, 10), at(0, 9), at(1, 11)],
        "customer_id": ["A", "B", "A"],
        "amount": [1.0, 2.0, 3.0],
    })
    m = compute_matrix(frame)
    assert m[:, COL_COUNT[1]].tolist() == [1.0, 1.0, 2.0]
    assert m[2, COL_GAP] == 3600.0


def test_offline_input_error_is_a_value_error() -> None:
    assert issubclass(OfflineInputError, ValueError)
