"""Features beyond the handbook's, chosen on the validation window only (issue 16, item 5).

Every candidate is one column the online engine could serve from the state it already
keeps per entity in Redis, in the same round trip, without a byte more per customer: the
customer's 30-day ring of day buckets (transaction counts and amount sums), its last
timestamp and previous gap; the terminal's rings of transactions and confirmed frauds,
read LABEL_DELAY_DAYS back. Starting from the features served before this study, each
candidate is added in the order below and kept when it raises average precision on the
validation window (a default model fitted on days 101-107, scored on days 115-121) by at
least ``MIN_GAIN``: a served column costs every event some work, so it has to earn its
place. The gain of every candidate, kept or not, is reported with ROC AUC and card
precision@100; the test week sees only the result.

A candidate the engine serves (it is in ``FEATURE_NAMES``) is read from the offline
engine's matrix, so the study measures exactly what a worker serves; the others are
computed here from the same saturated day totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudstream.bench.validation_window import Change, ValidationWindow
from fraudstream.features.definitions import (
    COUNT_MAX,
    DAY_MS,
    FEATURE_NAMES,
    GAP_CAP_MS,
    LABEL_DELAY_DAYS,
    MIN_MEAN_AMOUNT,
)

MIN_GAIN = 0.002  # validation average precision a new served column has to add


class History:
    """Offline totals of what the online state holds, for every row of a frame in
    arrival order: a customer's saturated day totals over any days of its 30-day ring,
    the transaction itself included, and a terminal's over days LABEL_DELAY_DAYS back."""

    def __init__(self, frame: pd.DataFrame) -> None:
        ts = frame["timestamp"].to_numpy(np.int64)
        self.n = n = len(frame)
        self.amount = frame["amount"].to_numpy(np.float64)
        self.day = day = ts // DAY_MS
        cents = np.rint(self.amount * 100.0).astype(np.int64)
        customer = pd.factorize(frame["customer_id"].astype(str), sort=False)[0].astype(np.int64)
        order = np.argsort(customer, kind="stable")
        c, d, t = customer[order], day[order], ts[order]
        same = np.r_[False, c[1:] == c[:-1]]
        new_day = ~(same & np.r_[False, d[1:] == d[:-1]])
        group = np.cumsum(new_day) - 1
        starts = np.flatnonzero(new_day)
        run_count = np.minimum(np.arange(n) - starts[group] + 1, COUNT_MAX)
        cum = np.cumsum(cents[order])
        run_cents = cum - np.r_[0, cum][starts[group]]
        ends = np.r_[starts[1:], n] - 1
        self._order, self._group = order, group
        self._run_count, self._run_cents = run_count, run_cents
        self._prefix_count = np.r_[0, np.cumsum(run_count[ends])]
        self._prefix_cents = np.r_[0, np.cumsum(run_cents[ends])]
        span = int(d.max()) - int(d.min()) + 64
        self._group_key = c[starts] * span + (d[starts] - int(d.min()) + 32)
        self._event_key = c * span + (d - int(d.min()) + 32)
        gaps = np.where(same, np.diff(t, prepend=t[0]), GAP_CAP_MS)
        previous = np.where(same, np.r_[GAP_CAP_MS, gaps[:-1]], GAP_CAP_MS)
        self.previous_gap_s = self._unsorted(np.clip(previous, 0, GAP_CAP_MS) / 1000.0)

        terminal = pd.factorize(frame["terminal_id"].astype(str), sort=False)[0].astype(np.int64)
        fraud = (frame["is_fraud"].to_numpy(np.int64) if "is_fraud" in frame.columns
                 else np.zeros(n, np.int64))
        tspan = int(day.max()) - int(day.min()) + 64
        key = terminal * tspan + (day - int(day.min()) + 32)
        by_key = np.argsort(key, kind="stable")
        sorted_key = key[by_key]
        first_of = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        inverse = np.cumsum(first_of) - 1
        self._t_keys = sorted_key[first_of]
        self._t_count = np.r_[0, np.cumsum(np.bincount(inverse))]
        self._t_frauds = np.r_[0, np.cumsum(np.bincount(inverse, weights=fraud[by_key]))]
        self._t_event_key = key - LABEL_DELAY_DAYS

    def _unsorted(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(self.n, values.dtype)
        out[self._order] = values
        return out

    def customer(self, oldest: int, newest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, cents, days with a transaction) over days d-oldest .. d-newest."""
        first = np.searchsorted(self._group_key, self._event_key - oldest, side="left")
        if newest == 0:  # today's bucket so far, the transaction included
            count = self._prefix_count[self._group] - self._prefix_count[first] + self._run_count
            cents = self._prefix_cents[self._group] - self._prefix_cents[first] + self._run_cents
            days = self._group - first + 1
        else:
            last = np.searchsorted(self._group_key, self._event_key - newest, side="right")
            count = self._prefix_count[last] - self._prefix_count[first]
            cents = self._prefix_cents[last] - self._prefix_cents[first]
            days = last - first
        return self._unsorted(count), self._unsorted(cents), self._unsorted(days)

    def mean(self, oldest: int, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean amount, count) over days d-oldest .. d-newest."""
        count, cents, _ = self.customer(oldest, newest)
        return cents / np.maximum(count, 1) / 100.0, count

    def terminal(self, oldest: int, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """(transactions, confirmed frauds) over days d-7-oldest .. d-7-newest."""
        lo = np.searchsorted(self._t_keys, self._t_event_key - oldest, side="left")
        hi = np.searchsorted(self._t_keys, self._t_event_key - newest, side="right")
        return self._t_count[hi] - self._t_count[lo], self._t_frauds[hi] - self._t_frauds[lo]


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float64) / np.maximum(np.asarray(b, np.float64), MIN_MEAN_AMOUNT)


def _against_older(h: History, recent: int, before: int) -> np.ndarray:
    """The mean of the last ``recent`` days against the mean of days d-29 .. d-``before``;
    0 when those older days hold no transaction."""
    mean, _ = h.mean(recent - 1, 0)
    older, count = h.mean(29, before)
    return np.where(count > 0, _ratio(mean, older), 0.0)


def _risk(frauds: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.asarray(np.divide(frauds.astype(np.float64), count, out=np.zeros(count.size),
                                where=count > 0))


@dataclass(frozen=True)
class FeatureCandidate:
    name: str
    what: str
    compute: Callable[[History], np.ndarray]


CANDIDATES: tuple[FeatureCandidate, ...] = (
    FeatureCandidate("customer_amount_over_mean_1d",
                     "amount against the customer's mean today",
                     lambda h: _ratio(h.amount, h.mean(0, 0)[0])),
    FeatureCandidate("customer_amount_over_mean_7d",
                     "amount against the customer's 7-day mean",
                     lambda h: _ratio(h.amount, h.mean(6, 0)[0])),
    FeatureCandidate("customer_mean_1d_over_mean_30d",
                     "today's mean amount against the 30-day mean",
                     lambda h: _ratio(h.mean(0, 0)[0], h.mean(29, 0)[0])),
    FeatureCandidate("customer_mean_7d_over_mean_before_7d",
                     "the 7-day mean amount against days d-29..d-7",
                     lambda h: _against_older(h, 7, 7)),
    FeatureCandidate("customer_mean_1d_over_mean_before_14d",
                     "today's mean amount against days d-29..d-14",
                     lambda h: _against_older(h, 1, 14)),
    FeatureCandidate("customer_nb_tx_1d_over_daily_mean_30d",
                     "burst: today's count against the 30-day daily mean",
                     lambda h: h.customer(0, 0)[0] / (h.customer(29, 0)[0] / 30.0)),
    FeatureCandidate("customer_active_days_30d",
                     "days with a transaction among the last 30",
                     lambda h: h.customer(29, 0)[2].astype(np.float64)),
    FeatureCandidate("customer_previous_gap",
                     "seconds between the two transactions before this one",
                     lambda h: h.previous_gap_s),
    FeatureCandidate("terminal_risk_7d_minus_30d",
                     "terminal risk trend: 7-day risk less 30-day risk",
                     lambda h: _risk(*h.terminal(6, 0)[::-1]) - _risk(*h.terminal(29, 0)[::-1])),
    FeatureCandidate("terminal_frauds_7d",
                     "confirmed frauds at the terminal over 7 days",
                     lambda h: h.terminal(6, 0)[1].astype(np.float64)),
    FeatureCandidate("terminal_nb_tx_1d_over_daily_mean_30d",
                     "terminal traffic: a day's count against its 30-day daily mean",
                     lambda h: h.terminal(0, 0)[0] / np.maximum(h.terminal(29, 0)[0] / 30.0,
                                                                1.0 / 30.0)),
)
CANDIDATE_NAMES = tuple(c.name for c in CANDIDATES)
# The features served before this study: the ones a candidate adds to.
BASE_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in CANDIDATE_NAMES)


def served(name: str) -> bool:
    return name in FEATURE_NAMES


@dataclass(frozen=True)
class FeatureChoice:
    base: dict[str, float]  # validation metrics of the base features
    changes: list[Change]
    kept: list[str]
    names: list[str]  # base and kept, in matrix column order
    matrix: np.ndarray  # every row of the frame, those columns


def study(frame: pd.DataFrame, engine: np.ndarray, window: ValidationWindow,
          progress: Callable[[str], None] = print,
          candidates: tuple[FeatureCandidate, ...] = CANDIDATES) -> FeatureChoice:
    """Add ``candidates`` one at a time to the base features; keep each that raises
    validation average precision by at least MIN_GAIN. ``engine`` is the offline engine's
    matrix of ``frame`` (columns FEATURE_NAMES)."""
    history: History | None = None

    def column(candidate: FeatureCandidate) -> np.ndarray:
        nonlocal history
        if served(candidate.name):
            return engine[:, FEATURE_NAMES.index(candidate.name)]
        history = history or History(frame)
        return candidate.compute(history)

    names = list(BASE_FEATURES)
    matrix = engine[:, [FEATURE_NAMES.index(n) for n in names]]
    base = best = window.metrics(matrix)
    changes, kept = [], []
    for candidate in candidates:
        progress(f"trying feature {candidate.name}")
        trial = np.column_stack([matrix, column(candidate)])
        metrics = window.metrics(trial)
        gain = metrics["average_precision"] - best["average_precision"]
        keep = gain >= MIN_GAIN
        changes.append(Change(f"feature {candidate.name}: {candidate.what}", metrics, gain,
                              keep))
        if keep:
            matrix, best = trial, metrics
            names.append(candidate.name)
            kept.append(candidate.name)
    return FeatureChoice(base, changes, kept, names, matrix)
