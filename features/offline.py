"""Offline feature engine: the same definitions over a DataFrame, vectorised.

The frame's rows must be in arrival order (the order a stream would deliver them), with
each customer's timestamps non-decreasing, which is how the simulator writes them. Per
customer-day totals saturate exactly like the online ring's buckets, so the two engines
agree value for value. Terminal windows end LABEL_DELAY_DAYS before the transaction's
day, when every label of those days is known: ``is_fraud`` gives them (all zero when the
frame has no labels). When labels come later than that, ``label_known_ms`` says from when
each is known, and a fraud counts only for transactions at or after that moment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudstream.features.definitions import (
    CENTS_MAX,
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
    COUNT_MAX,
    DAY_MS,
    FEATURE_NAMES,
    GAP_CAP_MS,
    LABEL_DELAY_DAYS,
    N_FEATURES,
    TOTAL_WINDOWS,
    WINDOWS,
    amount_over_mean,
    average_amount,
    calendar_flags,
    gap_seconds,
    mean_over_before,
    risk,
    to_cents,
)
from fraudstream.features.terminal_state import COUNT_MAX as TERMINAL_COUNT_MAX

REQUIRED_COLUMNS = ("timestamp", "customer_id", "terminal_id", "amount")


class OfflineInputError(ValueError):
    """The frame cannot be turned into features as given."""


def compute_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature matrix (columns FEATURE_NAMES) aligned with ``frame``'s index."""
    matrix = compute_matrix(frame)
    return pd.DataFrame(matrix, columns=list(FEATURE_NAMES), index=frame.index)


def compute_matrix(frame: pd.DataFrame, label_known_ms: np.ndarray | None = None,
                   ) -> np.ndarray:
    """Feature matrix of ``frame`` (rows in arrival order).

    ``label_known_ms``, aligned with the rows, is the event time from which each row's
    ``is_fraud`` label is known (as a worker that reads the label then would know it): a
    fraud counts in a terminal's risk only for transactions at or after it. Not given,
    every label of day d is known before any transaction of day d + LABEL_DELAY_DAYS."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise OfflineInputError(f"missing columns: {', '.join(missing)}")
    n = len(frame)
    matrix = np.empty((n, N_FEATURES), dtype=np.float64)
    if n == 0:
        return matrix
    ts = frame["timestamp"].to_numpy(dtype=np.int64)
    amount = frame["amount"].to_numpy(dtype=np.float64)
    customer, _ = pd.factorize(frame["customer_id"].astype(str), sort=False)
    customer = customer.astype(np.int64)
    day = ts // DAY_MS
    cents = to_cents(amount)

    order = np.argsort(customer, kind="stable")  # arrival order kept within a customer
    c_sorted, d_sorted, t_sorted = customer[order], day[order], ts[order]
    same_as_prev = np.r_[False, c_sorted[1:] == c_sorted[:-1]]
    if np.any(same_as_prev & (np.diff(t_sorted, prepend=t_sorted[0]) < 0)):
        raise OfflineInputError("a customer's timestamps go backwards: sort by arrival first")

    # Saturated running totals within each customer-day, then per customer-day totals.
    new_day = ~(same_as_prev & np.r_[False, d_sorted[1:] == d_sorted[:-1]])
    group = np.cumsum(new_day) - 1
    starts = np.flatnonzero(new_day)
    run_count = np.arange(n) - starts[group] + 1
    cents_sorted = cents[order]
    cum_cents = np.cumsum(cents_sorted)
    run_cents = cum_cents - np.r_[0, cum_cents][starts[group]]
    run_count = np.minimum(run_count, COUNT_MAX)
    run_cents = np.minimum(run_cents, CENTS_MAX)
    ends = np.r_[starts[1:], n] - 1
    day_count = run_count[ends]
    day_cents = run_cents[ends]
    prefix_count = np.r_[0, np.cumsum(day_count)]
    prefix_cents = np.r_[0, np.cumsum(day_cents)]

    base = int(d_sorted.min())
    span = int(d_sorted.max()) - base + max(WINDOWS) + 2
    group_key = c_sorted[starts] * span + (d_sorted[starts] - base + max(WINDOWS))
    event_key = c_sorted * span + (d_sorted - base + max(WINDOWS))

    counts: dict[int, np.ndarray] = {}
    sums: dict[int, np.ndarray] = {}
    for window in TOTAL_WINDOWS:
        first = np.searchsorted(group_key, event_key - (window - 1), side="left")
        counts[window] = np.empty(n, dtype=np.int64)
        sums[window] = np.empty(n, dtype=np.int64)
        counts[window][order] = prefix_count[group] - prefix_count[first] + run_count
        sums[window][order] = prefix_cents[group] - prefix_cents[first] + run_cents
    for window in WINDOWS:
        matrix[:, COL_COUNT[window]] = counts[window]
        matrix[:, COL_AVG[window]] = average_amount(sums[window], counts[window])

    gap_sorted = np.where(same_as_prev, np.diff(t_sorted, prepend=t_sorted[0]), GAP_CAP_MS)
    gaps = np.empty(n, dtype=np.int64)
    gaps[order] = gap_sorted
    matrix[:, COL_GAP] = gap_seconds(gaps)

    matrix[:, COL_AMOUNT] = amount
    weekend, night = calendar_flags(ts)
    matrix[:, COL_WEEKEND] = weekend
    matrix[:, COL_NIGHT] = night
    matrix[:, COL_AMOUNT_RATIO] = amount_over_mean(amount, matrix[:, COL_AVG[max(WINDOWS)]])
    _history_columns(matrix, counts, sums)
    fraud = (frame["is_fraud"].to_numpy(dtype=np.int64) if "is_fraud" in frame.columns
             else np.zeros(n, dtype=np.int64))
    if label_known_ms is not None and len(label_known_ms) != n:
        raise OfflineInputError(f"label_known_ms has {len(label_known_ms)} values for {n} rows")
    _terminal_columns(matrix, frame["terminal_id"], ts, fraud, label_known_ms)
    return matrix


def _history_columns(matrix: np.ndarray, counts: dict[int, np.ndarray],
                     sums: dict[int, np.ndarray]) -> None:
    """The customer's amounts against its own history (definitions.BEFORE_DAYS)."""
    longest = max(WINDOWS)
    matrix[:, COL_AMOUNT_OVER_1D] = amount_over_mean(matrix[:, COL_AMOUNT], matrix[:, COL_AVG[1]])
    matrix[:, COL_MEAN_1D_OVER_30D] = amount_over_mean(matrix[:, COL_AVG[1]],
                                                       matrix[:, COL_AVG[longest]])
    for (recent, before), column in COL_MEAN_OVER_BEFORE.items():
        matrix[:, column] = mean_over_before(matrix[:, COL_AVG[recent]], counts[longest],
                                             sums[longest], counts[before], sums[before])


def _terminal_columns(matrix: np.ndarray, terminal_ids: pd.Series, ts: np.ndarray,
                      fraud: np.ndarray, label_known_ms: np.ndarray | None) -> None:
    """Transactions and confirmed frauds per terminal over days d-7-W+1 .. d-7."""
    day = ts // DAY_MS
    terminal, _ = pd.factorize(terminal_ids.astype(str), sort=False)
    terminal = terminal.astype(np.int64)
    base = int(day.min())
    span = int(day.max()) - base + 1
    key = terminal * span + (day - base)
    # Work in terminal-day order: every window bound below is then sorted too, and
    # searchsorted runs several times faster on sorted needles than on shuffled ones.
    order = np.argsort(key, kind="stable")
    key, terminal, day, ts, fraud = key[order], terminal[order], day[order], ts[order], \
        fraud[order]
    new_group = np.r_[True, key[1:] != key[:-1]]
    groups = key[new_group]
    inverse = np.cumsum(new_group) - 1
    counts = np.minimum(np.bincount(inverse), TERMINAL_COUNT_MAX)
    frauds = np.bincount(inverse, weights=fraud).astype(np.int64)
    prefix_count = np.r_[0, np.cumsum(counts)]
    prefix_fraud = np.r_[0, np.cumsum(frauds)]
    last_day = day - LABEL_DELAY_DAYS
    known = None if label_known_ms is None else np.asarray(label_known_ms)[order]
    late = _LateLabels.of(key, day, fraud, known)
    for window in WINDOWS:
        first_day = last_day - window + 1
        # Days outside the data (before it began) hold nothing: clamp into the key range.
        lo_key = terminal * span + np.clip(first_day - base, 0, span)
        hi_key = terminal * span + np.clip(last_day - base + 1, 0, span)
        lo = np.searchsorted(groups, lo_key, side="left")
        hi = np.searchsorted(groups, hi_key, side="left")
        count = prefix_count[hi] - prefix_count[lo]
        frauds_known = prefix_fraud[hi] - prefix_fraud[lo]
        if late is not None:
            frauds_known -= late.unknown_at(lo_key, hi_key, ts)
        matrix[order, COL_TERMINAL_COUNT[window]] = count
        matrix[order, COL_TERMINAL_RISK[window]] = risk(frauds_known, count)


class _LateLabels:
    """Frauds whose label comes after the first transaction that could count it (the
    first of day d + LABEL_DELAY_DAYS), sorted by terminal-day key: a window subtracts
    those of its days still unknown when its transaction is scored."""

    PAIRS_PER_STEP = 1 << 22  # (transaction, late label) pairs compared at once

    def __init__(self, keys: np.ndarray, known_ms: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.known_ms = keys[order], known_ms[order]

    @classmethod
    def of(cls, key: np.ndarray, day: np.ndarray, fraud: np.ndarray,
           known_ms: np.ndarray | None) -> _LateLabels | None:
        if known_ms is None:
            return None
        known_ms = np.asarray(known_ms, dtype=np.int64)
        late = (fraud > 0) & (known_ms > (day + LABEL_DELAY_DAYS) * DAY_MS)
        if not late.any():
            return None
        weight = fraud[late]  # is_fraud counts its value: one label per unit
        return cls(np.repeat(key[late], weight), np.repeat(known_ms[late], weight))

    def unknown_at(self, lo_key: np.ndarray, hi_key: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Per transaction: late labels of its window's days known only after it."""
        lo = np.searchsorted(self.keys, lo_key, side="left")
        lengths = np.searchsorted(self.keys, hi_key, side="left") - lo
        unknown = np.zeros(ts.size, dtype=np.int64)
        rows = np.flatnonzero(lengths)
        pairs_before = np.r_[0, np.cumsum(lengths[rows])]
        start = 0
        while start < rows.size:
            # Bound memory: expand only so many (transaction, label) pairs at a time.
            limit = pairs_before[start] + self.PAIRS_PER_STEP
            stop = max(start + 1, int(np.searchsorted(pairs_before, limit, "right")) - 1)
            chunk = rows[start:stop]
            sizes = lengths[chunk]
            owner = np.repeat(np.arange(chunk.size), sizes)
            first = np.repeat(lo[chunk] - (np.cumsum(sizes) - sizes), sizes)
            position = first + np.arange(owner.size)
            later = self.known_ms[position] > ts[chunk][owner]
            unknown[chunk] = np.bincount(owner[later], minlength=chunk.size)
            start = stop
        return unknown
