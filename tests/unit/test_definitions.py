"""features.definitions: calendar flags, cents, gaps and averages."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.features.definitions import (
    BEFORE_DAYS,
    COL_AMOUNT,
    COL_AMOUNT_OVER_1D,
    COL_AMOUNT_RATIO,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_MEAN_1D_OVER_30D,
    COL_MEAN_OVER_BEFORE,
    COL_NIGHT,
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    COL_WEEKEND,
    DAY_MS,
    FEATURE_NAMES,
    GAP_CAP_MS,
    HOUR_MS,
    LABEL_DELAY_DAYS,
    MIN_MEAN_AMOUNT,
    N_FEATURES,
    RING_DAYS,
    SKEW_DAYS,
    TERMINAL_RING_DAYS,
    TOTAL_WINDOWS,
    WINDOWS,
    amount_over_mean,
    average_amount,
    calendar_flags,
    day_of,
    gap_seconds,
    mean_over_before,
    risk,
    to_cents,
)

SUNDAY_2018_04_01 = 1_522_540_800_000  # 2018-04-01T00:00:00Z, a Sunday
MINUTE_MS = 60_000


def flags(ts_ms: int) -> tuple[float, float]:
    weekend, night = calendar_flags(np.array([ts_ms], dtype=np.int64))
    return float(weekend[0]), float(night[0])


@pytest.mark.parametrize("days_after, weekend", [
    (-1, 1.0),  # Saturday 2018-03-31
    (0, 1.0),  # Sunday 2018-04-01
    (1, 0.0),  # Monday
    (2, 0.0),
    (3, 0.0),
    (4, 0.0),
    (5, 0.0),  # Friday 2018-04-06
    (6, 1.0),  # Saturday 2018-04-07
    (7, 1.0),  # Sunday 2018-04-08
    (8, 0.0),  # Monday 2018-04-09
])
def test_weekend_flag_around_2018_04_01(days_after: int, weekend: float) -> None:
    assert flags(SUNDAY_2018_04_01 + days_after * DAY_MS + 12 * HOUR_MS)[0] == weekend


def test_epoch_was_a_thursday() -> None:
    assert flags(0)[0] == 0.0  # Thursday 1970-01-01
    assert flags(2 * DAY_MS)[0] == 1.0  # Saturday 1970-01-03
    assert flags(4 * DAY_MS)[0] == 0.0  # Monday 1970-01-05
    assert flags(-1)[0] == 0.0  # Wednesday 1969-12-31 23:59:59.999


@pytest.mark.parametrize("offset_ms, night", [
    (0, 1.0),  # 00:00
    (3 * HOUR_MS, 1.0),
    (6 * HOUR_MS + 59 * MINUTE_MS, 1.0),  # 06:59
    (7 * HOUR_MS - 1, 1.0),  # 06:59:59.999
    (7 * HOUR_MS, 0.0),  # 07:00
    (12 * HOUR_MS, 0.0),
    (23 * HOUR_MS + 59 * MINUTE_MS, 0.0),  # 23:59
    (DAY_MS - 1, 0.0),
])
def test_night_flag_by_utc_hour(offset_ms: int, night: float) -> None:
    # Monday 2018-04-02, so the weekend flag is 0 for all of these.
    assert flags(SUNDAY_2018_04_01 + DAY_MS + offset_ms) == (0.0, night)


def test_weekend_boundary_at_midnight() -> None:
    sunday_end = SUNDAY_2018_04_01 + DAY_MS - 1
    assert flags(sunday_end) == (1.0, 0.0)
    assert flags(sunday_end + 1) == (0.0, 1.0)  # Monday 00:00


def test_calendar_flags_are_float_arrays_of_the_input_shape() -> None:
    ts = SUNDAY_2018_04_01 + np.arange(5, dtype=np.int64) * DAY_MS
    weekend, night = calendar_flags(ts)
    assert weekend.dtype == np.float64 and night.dtype == np.float64
    assert weekend.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert night.tolist() == [1.0] * 5


def test_day_of_floors_including_before_the_epoch() -> None:
    ts = np.array([0, DAY_MS - 1, DAY_MS, -1, SUNDAY_2018_04_01], dtype=np.int64)
    assert day_of(ts).tolist() == [0, 0, 1, -1, 17_622]


@pytest.mark.parametrize("amount, cents", [
    (0.01, 1),
    (0.29, 29),  # 0.29 * 100 == 28.999999999999996
    (1.15, 115),  # 114.99999999999999
    (19.99, 1999),  # 1998.9999999999998
    (4.35, 435),  # 434.99999999999994
    (1234.56, 123456),
    (5000.0, 500000),
    (0.0, 0),
])
def test_to_cents_rounds_to_the_nearest_cent(amount: float, cents: int) -> None:
    result = to_cents(np.array([amount]))
    assert result.dtype == np.int64
    assert int(result[0]) == cents


def test_to_cents_of_many_two_decimal_amounts_is_exact() -> None:
    cents = np.arange(1, 500_001, 7, dtype=np.int64)
    assert np.array_equal(to_cents(cents / 100.0), cents)


def test_to_cents_accepts_scalars_and_lists() -> None:
    assert int(to_cents(12.34)) == 1234
    assert to_cents([0.1, 0.2]).tolist() == [10, 20]


def test_gap_seconds_clips_and_converts() -> None:
    gaps = np.array([-5, 0, 1, 1500, GAP_CAP_MS, GAP_CAP_MS + 1, 10 * GAP_CAP_MS])
    assert gap_seconds(gaps).tolist() == [0.0, 0.0, 0.001, 1.5, 2_592_000.0, 2_592_000.0,
                                          2_592_000.0]


def test_average_amount_in_currency_units_and_safe_for_zero_count() -> None:
    sums = np.array([3050, 0, 1000, 3375])
    counts = np.array([2, 0, 1, 3])
    assert average_amount(sums, counts).tolist() == [15.25, 0.0, 10.0, 11.25]


def test_feature_column_layout() -> None:
    assert N_FEATURES == len(FEATURE_NAMES) == 21
    assert len(set(FEATURE_NAMES)) == N_FEATURES
    assert FEATURE_NAMES[COL_AMOUNT] == "amount"
    assert FEATURE_NAMES[COL_WEEKEND] == "is_weekend"
    assert FEATURE_NAMES[COL_NIGHT] == "is_night"
    for window in (1, 7, 30):
        assert FEATURE_NAMES[COL_COUNT[window]] == f"customer_nb_tx_{window}d"
        assert FEATURE_NAMES[COL_AVG[window]] == f"customer_avg_amount_{window}d"
    assert FEATURE_NAMES[COL_GAP] == "customer_seconds_since_prev"
    assert FEATURE_NAMES[COL_AMOUNT_RATIO] == "customer_amount_over_mean_30d"
    for window in (1, 7, 30):
        assert FEATURE_NAMES[COL_TERMINAL_COUNT[window]] == f"terminal_nb_tx_{window}d"
        assert FEATURE_NAMES[COL_TERMINAL_RISK[window]] == f"terminal_risk_{window}d"
    assert [COL_TERMINAL_COUNT[w] for w in (1, 7, 30)] == [11, 12, 13]
    assert [COL_TERMINAL_RISK[w] for w in (1, 7, 30)] == [14, 15, 16]
    assert GAP_CAP_MS == 30 * DAY_MS
    assert FEATURE_NAMES[COL_AMOUNT_OVER_1D] == "customer_amount_over_mean_1d"
    assert FEATURE_NAMES[COL_MEAN_1D_OVER_30D] == "customer_mean_1d_over_mean_30d"
    for (recent, before), column in COL_MEAN_OVER_BEFORE.items():
        assert FEATURE_NAMES[column] == f"customer_mean_{recent}d_over_mean_before_{before}d"
        assert recent in WINDOWS and before in BEFORE_DAYS and before < RING_DAYS
    assert sorted(COL_MEAN_OVER_BEFORE.values()) == [19, 20] and N_FEATURES == 21
    assert set(TOTAL_WINDOWS) == {*WINDOWS, *BEFORE_DAYS}


def test_terminal_ring_holds_the_longest_window_plus_the_label_delay_and_skew() -> None:
    assert RING_DAYS == 30
    assert LABEL_DELAY_DAYS == 7
    assert SKEW_DAYS == 2
    assert TERMINAL_RING_DAYS == RING_DAYS + LABEL_DELAY_DAYS + SKEW_DAYS == 39


def test_risk_is_the_fraud_share_and_zero_without_transactions() -> None:
    frauds = np.array([0, 1, 2, 0, 3])
    counts = np.array([0, 4, 2, 5, 0])
    result = risk(frauds, counts)
    assert result.dtype == np.float64
    assert result.tolist() == [0.0, 0.25, 1.0, 0.0, 0.0]
    assert not np.isnan(result).any()


def test_mean_over_before_takes_the_longest_window_less_the_recent_days() -> None:
    # 30-day totals (count, cents) less the B-day ones: the days before the last B.
    recent = np.array([40.0, 40.0, 5.0, 3.0])
    result = mean_over_before(recent, np.array([5, 3, 2, 4]), np.array([7000, 3000, 2, 1000]),
                              np.array([3, 3, 1, 1]), np.array([5000, 3000, 1, 400]))
    # 2000 cents in 2: mean 10; nothing before: 0; 1 cent in 1: floored at one cent;
    # 600 in 3: 2.
    assert result.tolist() == [4.0, 0.0, 500.0, 1.5]


def test_amount_over_mean_floors_the_mean_at_one_cent() -> None:
    amounts = np.array([20.5, 3.0, 0.5, 2.0])
    means = np.array([15.25, 3.0, 0.0, 0.004])
    assert MIN_MEAN_AMOUNT == 0.01
    assert amount_over_mean(amounts, means).tolist() == [20.5 / 15.25, 1.0, 50.0, 200.0]
