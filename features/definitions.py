"""The feature set, defined once. Both engines (online and offline) import these.

Windows run on event time in whole UTC-day buckets. A customer's W-day window for a
transaction on day d covers days d-W+1 .. d and includes the transaction itself. A
terminal's W-day window is shifted back by the label delay: days d-7-W+1 .. d-7, whose
fraud labels are known by day d. Amounts are summed in integer cents, so both engines do
identical arithmetic.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WINDOWS: tuple[int, ...] = (1, 7, 30)
RING_DAYS = max(WINDOWS)
LABEL_DELAY_DAYS = 7
# Terminals hear from every partition; partitions may be a little apart in event time, so
# the ring keeps SKEW_DAYS more than the windows need, or a transaction read a moment
# "late" at midnight would have lost the oldest day of its 30-day window.
SKEW_DAYS = 2
TERMINAL_RING_DAYS = RING_DAYS + LABEL_DELAY_DAYS + SKEW_DAYS
NIGHT_LAST_HOUR = 6  # hours 0..6 inclusive are "night", as in the handbook
GAP_CAP_MS = RING_DAYS * DAY_MS  # seconds-since-previous is capped at the longest window
# Per customer-day transaction count saturates here: one byte keeps the packed state in a
# smaller allocator class (<= 300 Redis bytes per customer), and 255 payments in a day is
# already as anomalous as a feature can say.
COUNT_MAX = 2**8 - 1
CENTS_MAX = 2**32 - 1  # per customer-day amount in cents saturates here
# The customer's amounts against its own history, read from the same 30-day ring (chosen
# on the validation window: bench/feature_study.py). A "before B days" mean covers days
# d-29 .. d-B of the 30-day window: its totals less those of the B-day window. TOTAL_WINDOWS
# are the customer windows whose totals the features read.
BEFORE_DAYS: tuple[int, ...] = (7, 14)
TOTAL_WINDOWS: tuple[int, ...] = tuple(sorted({*WINDOWS, *BEFORE_DAYS}))

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"customer_nb_tx_{w}d" for w in WINDOWS),
    *(f"customer_avg_amount_{w}d" for w in WINDOWS),
    "customer_seconds_since_prev",
    "customer_amount_over_mean_30d",
    *(f"terminal_nb_tx_{w}d" for w in WINDOWS),
    *(f"terminal_risk_{w}d" for w in WINDOWS),
    "customer_amount_over_mean_1d",
    "customer_mean_1d_over_mean_30d",
    "customer_mean_7d_over_mean_before_7d",
    "customer_mean_1d_over_mean_before_14d",
)
N_FEATURES = len(FEATURE_NAMES)
COL_AMOUNT, COL_WEEKEND, COL_NIGHT = 0, 1, 2
COL_COUNT = {w: 3 + i for i, w in enumerate(WINDOWS)}
COL_AVG = {w: 3 + len(WINDOWS) + i for i, w in enumerate(WINDOWS)}
COL_GAP = 3 + 2 * len(WINDOWS)
COL_AMOUNT_RATIO = COL_GAP + 1
COL_TERMINAL_COUNT = {w: COL_AMOUNT_RATIO + 1 + i for i, w in enumerate(WINDOWS)}
COL_TERMINAL_RISK = {w: COL_AMOUNT_RATIO + 1 + len(WINDOWS) + i for i, w in enumerate(WINDOWS)}
COL_AMOUNT_OVER_1D = COL_TERMINAL_RISK[max(WINDOWS)] + 1  # amount / today's mean
COL_MEAN_1D_OVER_30D = COL_AMOUNT_OVER_1D + 1  # today's mean / the 30-day mean
# (recent window, before days): the recent window's mean / the mean before those days
COL_MEAN_OVER_BEFORE = {(7, 7): COL_MEAN_1D_OVER_30D + 1, (1, 14): COL_MEAN_1D_OVER_30D + 2}
MIN_MEAN_AMOUNT = 0.01  # a mean below one cent would make the ratio meaningless


def day_of(ts_ms: np.ndarray) -> np.ndarray:
    return np.asarray(np.floor_divide(ts_ms, DAY_MS))


def calendar_flags(ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_weekend, is_night) as float arrays, from UTC epoch milliseconds."""
    day = np.floor_divide(ts_ms, DAY_MS)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hour = np.floor_divide(ts_ms - day * DAY_MS, HOUR_MS)
    return (weekday >= 5).astype(np.float64), (hour <= NIGHT_LAST_HOUR).astype(np.float64)


def to_cents(amount: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(amount, dtype=np.float64) * 100.0).astype(np.int64)


def gap_seconds(gap_ms: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(gap_ms, 0, GAP_CAP_MS), dtype=np.float64) / 1000.0


def average_amount(cents_sum: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.asarray(cents_sum, np.float64) / np.asarray(np.maximum(count, 1), np.float64) / 100.0


def amount_over_mean(amount: np.ndarray, mean_amount: np.ndarray) -> np.ndarray:
    return np.asarray(amount, dtype=np.float64) / np.asarray(
        np.maximum(mean_amount, MIN_MEAN_AMOUNT), dtype=np.float64)


def mean_over_before(recent_mean: np.ndarray, longest_count: np.ndarray,
                     longest_cents: np.ndarray, before_count: np.ndarray,
                     before_cents: np.ndarray) -> np.ndarray:
    """A recent mean amount against the mean of the longest window's days before the last
    B (its totals less those of the B-day window, ``before_*``); 0 when those days hold no
    transaction."""
    count = np.asarray(longest_count, np.int64) - np.asarray(before_count, np.int64)
    older = average_amount(np.asarray(longest_cents, np.int64)
                           - np.asarray(before_cents, np.int64), count)
    return np.where(count > 0, amount_over_mean(recent_mean, older), 0.0)


def risk(frauds: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Share of confirmed frauds; 0 when the terminal had no transactions."""
    count = np.asarray(count, dtype=np.float64)
    return np.asarray(np.divide(np.asarray(frauds, dtype=np.float64), count,
                                out=np.zeros_like(count), where=count > 0))

# Bump when a feature's meaning changes without its name changing (a new window rule, a
# different cap): models trained on the old meaning are then refused at promote time.
FEATURE_SCHEMA_VERSION = 1


def feature_schema() -> dict[str, object]:
    """What a model relies on besides the feature order: the parameters of the definitions."""
    return {
        "version": FEATURE_SCHEMA_VERSION,
        "names": list(FEATURE_NAMES),
        "windows_days": list(WINDOWS),
        "before_days": list(BEFORE_DAYS),
        "min_mean_amount": MIN_MEAN_AMOUNT,
        "label_delay_days": LABEL_DELAY_DAYS,
        "night_last_hour": NIGHT_LAST_HOUR,
        "gap_cap_ms": GAP_CAP_MS,
        "count_max": COUNT_MAX,
        "cents_max": CENTS_MAX,
    }


def feature_schema_digest() -> str:
    """sha256 of ``feature_schema()``: recorded in every model manifest."""
    canonical = json.dumps(feature_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
