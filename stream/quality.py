"""Live model quality: decisions joined with the confirmed labels that follow them.

Labels arrive long after decisions (days in production, seconds in the demo) and on
another topic, so a worker cannot join them (its label partitions need not be its
transaction partitions). ``fraudstream monitor`` reads both output streams instead and
keeps: the most recent decisions by transaction id and the labels that came first (both
bounded: the two topics are read in no particular order relative to each other), and the
most recent joined (score, flagged, is_fraud) triples, over which precision, recall and
average precision are computed."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from sklearn.metrics import average_precision_score

T = TypeVar("T")


@dataclass(frozen=True)
class Quality:
    labelled: int
    frauds: int
    precision: float | None  # None: nothing flagged in the window
    recall: float | None  # None: no fraud in the window
    average_precision: float | None


class LiveQuality:
    def __init__(self, max_decisions: int = 200_000, window: int = 5_000) -> None:
        self._decisions: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._labels: OrderedDict[str, bool] = OrderedDict()  # waiting for their decision
        self._max_pending = max_decisions
        self._joined: deque[tuple[float, bool, bool]] = deque(maxlen=window)

    @property
    def unmatched_labels(self) -> int:
        """Labels whose decision has not been seen (yet, or ever)."""
        return len(self._labels)

    def add_decision(self, transaction_id: str, score: float, flagged: bool) -> bool:
        """Remember a decision; True when its label was already waiting and it joined."""
        is_fraud = self._labels.pop(transaction_id, None)
        if is_fraud is not None:
            self._joined.append((score, flagged, is_fraud))
            return True
        _remember(self._decisions, transaction_id, (score, flagged), self._max_pending)
        return False

    def add_label(self, transaction_id: str, is_fraud: bool) -> bool:
        """Join a confirmed label; False when its decision is not known (yet)."""
        decision = self._decisions.pop(transaction_id, None)
        if decision is None:
            _remember(self._labels, transaction_id, is_fraud, self._max_pending)
            return False
        score, flagged = decision
        self._joined.append((score, flagged, is_fraud))
        return True

    def measure(self) -> Quality:
        if not self._joined:
            return Quality(0, 0, None, None, None)
        scores, flagged, fraud = (np.array(column) for column in zip(*self._joined,
                                                                      strict=True))
        flagged, fraud = flagged.astype(bool), fraud.astype(bool)
        hits = int(np.sum(flagged & fraud))
        precision = hits / int(flagged.sum()) if flagged.any() else None
        recall = hits / int(fraud.sum()) if fraud.any() else None
        average = (float(average_precision_score(fraud, scores))
                   if fraud.any() and not fraud.all() else None)
        return Quality(len(self._joined), int(fraud.sum()), precision, recall, average)


def _remember(pending: OrderedDict[str, T], key: str, value: T, limit: int) -> None:
    pending[key] = value
    pending.move_to_end(key)
    while len(pending) > limit:
        pending.popitem(last=False)
