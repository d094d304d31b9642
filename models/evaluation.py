"""Time-based split and the handbook's metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.models.introsort import descending_order

DAY_MS = 86_400_000


@dataclass(frozen=True)
class SplitPlan:
    """Train on ``train_days`` from ``start_day``, skip ``delay_days``, test ``test_days``."""

    start_day: int
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @property
    def test_start(self) -> int:
        return self.start_day + self.train_days + self.delay_days

    @property
    def end_day(self) -> int:
        return self.test_start + self.test_days


def default_plan(total_days: int, train_days: int = 7, delay_days: int = 7,
                 test_days: int = 7) -> SplitPlan:
    """The handbook trains from day 115 (2018-07-25); shorter datasets use their end."""
    needed = train_days + delay_days + test_days
    if total_days < needed + 1:
        raise ValueError(f"need at least {needed + 1} simulated days, have {total_days}")
    start = 115 if total_days >= 115 + needed else max(1, total_days - needed)
    return SplitPlan(start, train_days, delay_days, test_days)


def validation_plan(plan: SplitPlan) -> SplitPlan:
    """The same protocol moved back so that its test window, the validation window, ends
    where ``plan``'s training ends: every validation label is known when the final model is
    trained, and nothing in it comes from the delay or the test window. As long as the data
    allow, that is the handbook's shift by delay plus test days (train days 101-107,
    validate 115-121 for the reference protocol); shorter data get a shorter training span.
    """
    window_start = plan.start_day + plan.train_days - plan.test_days
    train_end = window_start - plan.delay_days
    start = max(0, train_end - plan.train_days)
    if window_start < 0 or train_end - start < 1:
        raise ValueError(f"no room for a validation window before training day "
                         f"{plan.start_day}: simulate more days")
    return SplitPlan(start, train_end - start, plan.delay_days, plan.test_days)


def time_split(frame: pd.DataFrame, plan: SplitPlan) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test). Customers known to be compromised before each test day
    (frauds in the training period, or seen by the end of the delay before that day) are
    removed from it, as in the handbook's protocol."""
    first_day = int(frame["timestamp"].min() // DAY_MS)
    day = (frame["timestamp"].to_numpy() // DAY_MS) - first_day
    fraud = frame["is_fraud"].to_numpy() == 1
    customer = frame["customer_id"].to_numpy()
    train = (day >= plan.start_day) & (day < plan.start_day + plan.train_days)
    known = set(customer[train & fraud].tolist())
    test = np.zeros(len(frame), dtype=bool)
    for offset in range(plan.test_days):
        seen_day = plan.start_day + plan.train_days + offset - 1
        known |= set(customer[(day == seen_day) & fraud].tolist())
        today = day == plan.test_start + offset
        test |= today & ~np.isin(customer, list(known))
    return train, test


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """The handbook's card precision@k (``card_precision_top_k``): each day, rank the cards
    by their highest score of the day and count the compromised ones among the top ``k``,
    divided by ``k``; a card found compromised in an earlier day's top ``k`` has been
    blocked, so it is left out of every later day's ranking. The mean over the days."""
    cards = pd.DataFrame({
        "day": frame["timestamp"].to_numpy() // DAY_MS,
        "customer": frame["customer_id"].to_numpy(),
        "score": np.asarray(scores, dtype=np.float64),
        "fraud": frame["is_fraud"].to_numpy(),
    }).groupby(["day", "customer"], sort=True).max()
    detected: set[object] = set()
    precisions = []
    for _, per_day in cards.groupby(level="day", sort=True):
        per_day = per_day.droplevel("day")
        per_day = per_day[~per_day.index.isin(list(detected))]
        # Ranked as the handbook's pandas sort ranks them, ties included: trees give many
        # cards the same score, and which of them make the top k moves the figure.
        top = per_day.iloc[descending_order(per_day["score"].to_numpy())[:k]]
        found = top.index[top["fraud"].to_numpy() == 1]
        detected.update(found.tolist())
        precisions.append(len(found) / k)
    return float(np.mean(precisions)) if precisions else 0.0


def evaluate(frame: pd.DataFrame, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if len(np.unique(labels)) < 2:
        raise ValueError("the test period has only one class: simulate more days or customers")
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "card_precision_at_100": card_precision_at_k(frame, scores, 100),
    }
