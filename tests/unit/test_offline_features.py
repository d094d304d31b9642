"""features.offline: hand-computed feature values and input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.definitions import (
    CENTS_MAX,
    COL_AMOUNT,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_NIGHT,
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    COL_WEEKEND,
    COUNT_MAX,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
)
from fraudstream.features.offline import OfflineInputError, compute_features, compute_matrix

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z, a Sunday
CAP_S = 30 * 86_400.0


def at(day: int, hour: int, minute: int = 0) -> int:
    return T0 + day * DAY_MS + hour * HOUR_MS + minute * 60_000


def row(matrix: np.ndarray, i: int) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, matrix[i].tolist(), strict=True))


def expected(amount: float, weekend: float, night: float, counts: tuple[int, int, int],
             avgs: tuple[float, float, float], gap_s: float, ratio: float,
             terminal_counts: tuple[int, int, int] = (0, 0, 0),
             terminal_risks: tuple[float, float, float] = (0.0, 0.0, 0.0),
             history: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0),
             ) -> dict[str, float]:
    return {
        "amount": amount, "is_weekend": weekend, "is_night": night,
        "customer_nb_tx_1d": counts[0], "customer_nb_tx_7d": counts[1],
        "customer_nb_tx_30d": counts[2], "customer_avg_amount_1d": avgs[0],
        "customer_avg_amount_7d": avgs[1], "customer_avg_amount_30d": avgs[2],
        "customer_seconds_since_prev": gap_s,
        "customer_amount_over_mean_30d": ratio,
        "terminal_nb_tx_1d": terminal_counts[0], "terminal_nb_tx_7d": terminal_counts[1],
        "terminal_nb_tx_30d": terminal_counts[2], "terminal_risk_1d": terminal_risks[0],
        "terminal_risk_7d": terminal_risks[1], "terminal_risk_30d": terminal_risks[2],
        "customer_amount_over_mean_1d": history[0],
        "customer_mean_1d_over_mean_30d": history[1],
        "customer_mean_7d_over_mean_before_7d": history[2],
        "customer_mean_1d_over_mean_before_14d": history[3],
    }


# Arrival order. Customer A: day 0 (twice), day 5, day 7; customer B: day 2.
# Terminal T1: day 0 (twice), day 7; terminal T2: days 2 and 5. No labels (is_fraud absent).
HAND_FRAME = pd.DataFrame({
    "timestamp": [at(0, 10), at(0, 11), at(2, 3), at(5, 8), at(7, 12)],
    "customer_id": ["A", "A", "B", "A", "A"],
    "terminal_id": ["T1", "T1", "T2", "T2", "T1"],
    "amount": [10.00, 20.50, 100.00, 3.25, 1.00],
})

HAND_EXPECTED = [
    # A on Sunday 10:00: first transaction, gap capped at 30 days; amount / mean = 1.
    # Terminal windows end at day -7: nothing there for any row but the last. History:
    # amount / today's mean, today's mean / 30-day mean, then the 7-day mean against days
    # d-29..d-7 and today's mean against days d-29..d-14, 0 while those days are empty.
    expected(10.0, 1.0, 0.0, (1, 1, 1), (10.0, 10.0, 10.0), CAP_S, 1.0),
    # A on Sunday 11:00: same day, one hour later; 20.5 / 15.25
    expected(20.5, 1.0, 0.0, (2, 2, 2), (15.25, 15.25, 15.25), 3600.0, 1.3442622950819672,
             history=(1.3442622950819672, 1.0, 0.0, 0.0)),
    # B on Tuesday 03:00 (night), first transaction
    expected(100.0, 0.0, 1.0, (1, 1, 1), (100.0, 100.0, 100.0), CAP_S, 1.0),
    # A on Friday 08:00: 7d window (days -1..5) holds all three, 33.75 / 3
    # gap: day 0 11:00 -> day 5 08:00 = 5 days - 3 h = 421_200 s; 3.25 / 11.25 = 13 / 45.
    # T2's windows end at day -2: T2's day-2 transaction is not in them.
    expected(3.25, 0.0, 0.0, (1, 3, 3), (3.25, 11.25, 11.25), 421_200.0, 0.28888888888888886,
             history=(1.0, 0.28888888888888886, 0.0, 0.0)),
    # A on Sunday 12:00 of day 7: 7d window (days 1..7) holds days 5 and 7, 4.25 / 2;
    # 30d holds all four, 34.75 / 4. gap: day 5 08:00 -> day 7 12:00 = 187_200 s;
    # 1 / 8.6875 = 16 / 139. T1's windows end at day 0 (1d: day 0; 7d: days -6..0;
    # 30d: days -29..0): the two day-0 transactions, no labels so risk 0.
    # Days -22..0 (before the last 7) hold day 0: mean 15.25, and 2.125 / 15.25 = 17 / 122;
    # the last 14 days hold all four, nothing before them.
    expected(1.0, 1.0, 0.0, (1, 2, 4), (1.0, 2.125, 8.6875), 187_200.0, 0.11510791366906475,
             (2, 2, 2), history=(1.0, 0.11510791366906475, 0.13934426229508196, 0.0)),
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
        "terminal_id": ["T"] * 4,
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


def test_means_before_the_last_7_and_14_days() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 12), at(15, 12), at(20, 9), at(20, 10)],
        "customer_id": ["A"] * 4,
        "terminal_id": ["T"] * 4,
        "amount": [10.0, 30.0, 50.0, 70.0],
    })
    m = compute_matrix(frame)
    rows = [row(m, i) for i in range(4)]
    # Day 15: days -14..8 (before the last 7) and -14..1 (before the last 14) hold day 0.
    assert rows[1]["customer_mean_7d_over_mean_before_7d"] == 30.0 / 10.0
    assert rows[1]["customer_mean_1d_over_mean_before_14d"] == 30.0 / 10.0
    # Day 20, 10:00: the last 7 days (14..20) hold 30, 50, 70, mean 50; the 14 days
    # (7..20) too; before them only day 0's 10. Today's mean is 60.
    assert rows[3]["customer_mean_7d_over_mean_before_7d"] == 50.0 / 10.0
    assert rows[3]["customer_mean_1d_over_mean_before_14d"] == 60.0 / 10.0
    assert rows[3]["customer_amount_over_mean_1d"] == 70.0 / 60.0
    assert rows[3]["customer_mean_1d_over_mean_30d"] == 60.0 / 40.0
    # Day 0: nothing before either: 0.
    assert rows[0]["customer_mean_7d_over_mean_before_7d"] == 0.0
    assert rows[0]["customer_mean_1d_over_mean_before_14d"] == 0.0


def test_gap_is_capped_and_equal_timestamps_give_zero() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 1), at(45, 1), at(45, 1)],
        "customer_id": [7, 7, 7],
        "terminal_id": [8, 8, 8],
        "amount": [1.0, 1.0, 1.0],
    })
    m = compute_matrix(frame)
    assert m[:, COL_GAP].tolist() == [CAP_S, CAP_S, 0.0]
    assert m[:, COL_COUNT[30]].tolist() == [1.0, 1.0, 2.0]


def test_numeric_and_string_ids_of_the_same_customer_are_one_customer() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 9), at(0, 10)],
        "customer_id": pd.Series([42, "42"], dtype=object),
        "terminal_id": ["T", "U"],
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
    # Each amount is a 100th of the cents cap: cents saturate at the 100th event, well
    # before the count saturates at COUNT_MAX; each saturates on its own.
    cents_each = CENTS_MAX // 100
    frame = pd.DataFrame({
        "timestamp": np.full(n, at(3, 12), dtype=np.int64),
        "customer_id": ["big"] * n,
        "terminal_id": ["shop"] * n,
        "amount": np.full(n, cents_each / 100.0),
    })
    m = compute_matrix(frame)
    k = CENTS_MAX // cents_each  # 100 events fit under the cap
    assert m[k - 1, COL_AVG[1]] == cents_each / 100.0
    assert m[k, COL_AVG[1]] == CENTS_MAX / (k + 1) / 100.0
    assert m[COUNT_MAX - 1, COL_COUNT[1]] == COUNT_MAX
    assert m[-1, COL_COUNT[1]] == COUNT_MAX
    assert m[-1, COL_COUNT[30]] == COUNT_MAX
    assert m[-1, COL_AVG[30]] == CENTS_MAX / COUNT_MAX / 100.0


def test_empty_frame_gives_an_empty_matrix() -> None:
    frame = pd.DataFrame({"timestamp": [], "customer_id": [], "terminal_id": [],
                          "amount": []})
    assert compute_matrix(frame).shape == (0, len(FEATURE_NAMES))


@pytest.mark.parametrize("drop", [["timestamp"], ["customer_id"], ["terminal_id"],
                                  ["amount"], ["timestamp", "amount"]])
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
        "terminal_id": ["T", "T", "T"],
        "amount": [1.0, 1.0, 1.0],
    })
    with pytest.raises(OfflineInputError, match="backwards"):
        compute_matrix(frame)


def test_different_customers_may_interleave_out_of_time_order() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(1, 10), at(0, 9), at(1, 11)],
        "customer_id": ["A", "B", "A"],
        "terminal_id": ["T", "T", "T"],
        "amount": [1.0, 2.0, 3.0],
    })
    m = compute_matrix(frame)
    assert m[:, COL_COUNT[1]].tolist() == [1.0, 1.0, 2.0]
    assert m[2, COL_GAP] == 3600.0


def test_terminal_windows_end_seven_days_back_and_use_is_fraud() -> None:
    # Terminal T: days 0 (2, one fraud), 1 (1 fraud), 3 (2, one fraud), then days 8, 10.
    # Terminal U (day 3, fraud) must not leak into T's windows.
    frame = pd.DataFrame({
        "timestamp": [at(0, 9), at(0, 10), at(1, 9), at(3, 9), at(3, 10), at(3, 11),
                      at(8, 9), at(10, 9)],
        "customer_id": ["a", "b", "a", "b", "a", "c", "b", "a"],
        "terminal_id": ["T", "T", "T", "T", "T", "U", "T", "T"],
        "amount": [1.0] * 8,
        "is_fraud": [1, 0, 1, 0, 1, 1, 0, 0],
    })
    m = compute_matrix(frame)
    counts = {w: m[:, COL_TERMINAL_COUNT[w]].tolist() for w in (1, 7, 30)}
    risks = {w: m[:, COL_TERMINAL_RISK[w]].tolist() for w in (1, 7, 30)}
    # Rows on days 0..3 look at days <= -4: empty, risk 0.
    # Day 8 looks at day 1 (1d: 1 tx, 1 fraud) and days -5..1 / -28..1 (3 tx, 2 frauds).
    # Day 10 looks at day 3 (1d: 2 tx of T, 1 fraud) and days -3..3 (5 tx, 3 frauds).
    assert counts[1] == [0, 0, 0, 0, 0, 0, 1, 2]
    assert counts[7] == [0, 0, 0, 0, 0, 0, 3, 5]
    assert counts[30] == [0, 0, 0, 0, 0, 0, 3, 5]
    assert risks[1] == [0, 0, 0, 0, 0, 0, 1.0, 0.5]
    assert risks[7] == [0, 0, 0, 0, 0, 0, 2 / 3, 0.6]
    assert risks[30] == [0, 0, 0, 0, 0, 0, 2 / 3, 0.6]


def test_without_is_fraud_every_terminal_risk_is_zero() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 9), at(7, 9)],
        "customer_id": ["a", "a"],
        "terminal_id": ["T", "T"],
        "amount": [1.0, 2.0],
    })
    unlabelled = compute_matrix(frame)
    labelled = compute_matrix(frame.assign(is_fraud=[1, 0]))
    for w in (1, 7, 30):
        assert unlabelled[:, COL_TERMINAL_COUNT[w]].tolist() == [0.0, 1.0]
        assert unlabelled[:, COL_TERMINAL_RISK[w]].tolist() == [0.0, 0.0]
        assert labelled[:, COL_TERMINAL_RISK[w]].tolist() == [0.0, 1.0]
    other = [c for c in range(len(FEATURE_NAMES))
             if c not in {COL_TERMINAL_RISK[w] for w in (1, 7, 30)}]
    assert np.array_equal(unlabelled[:, other], labelled[:, other])


def test_terminal_thirty_day_window_is_days_minus_36_to_minus_7() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 12), at(1, 12), at(30, 12), at(36, 12), at(37, 12)],
        "customer_id": ["a", "b", "c", "d", "e"],
        "terminal_id": ["T"] * 5,
        "amount": [1.0] * 5,
        "is_fraud": [1, 0, 0, 0, 0],
    })
    m = compute_matrix(frame)
    # Day 36: days 0..29 -> days 0 and 1. Day 37: days 1..30 -> days 1 and 30.
    # Day 30 sees days -6..23 -> days 0 and 1 too.
    assert m[:, COL_TERMINAL_COUNT[30]].tolist() == [0, 0, 2, 2, 2]
    assert m[:, COL_TERMINAL_RISK[30]].tolist() == [0, 0, 0.5, 0.5, 0.0]
    # 7d at day 37: days 24..30 -> day 30 only; at day 36: days 23..29 -> nothing.
    assert m[:, COL_TERMINAL_COUNT[7]].tolist() == [0, 0, 0, 0, 1]


def test_numeric_and_string_ids_of_the_same_terminal_are_one_terminal() -> None:
    frame = pd.DataFrame({
        "timestamp": [at(0, 9), at(7, 10)],
        "customer_id": ["a", "b"],
        "terminal_id": pd.Series([42, "42"], dtype=object),
        "amount": [1.0, 3.0],
        "is_fraud": [True, False],
    })
    m = compute_matrix(frame)
    assert m[1, COL_TERMINAL_COUNT[1]] == 1 and m[1, COL_TERMINAL_RISK[1]] == 1.0


def test_offline_input_error_is_a_value_error() -> None:
    assert issubclass(OfflineInputError, ValueError)
