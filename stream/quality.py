"""Live model quality: decisions joined with the confirmed labels that follow them.

Labels arrive long after decisions (days in production, seconds in the demo) and on
another topic, so a worker cannot join them (its label partitions need not be its
transaction partitions). ``fraudstream monitor`` reads both output streams instead and
keeps: the most recent decisions by transaction id and the labels that came first (both
bounded: the two topics are read in no particular order relative to each other), and the
most recent joined (score, flagged, is_fraud) triples, over which precision, recall and
average precision are computed.

``LiveQuality`` keeps all that in process memory: for tests and short demos. A monitor
with Redis uses ``stream.quality_store.RedisLiveQuality``, which survives label delays of
days and restarts."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
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


def measure_pairs(scores: np.ndarray, flagged: np.ndarray, fraud: np.ndarray) -> Quality:
    """Precision and recall of the flags, average precision of the scores."""
    if scores.size == 0:
        return Quality(0, 0, None, None, None)
    hits = int(np.sum(flagged & fraud))
    precision = hits / int(flagged.sum()) if flagged.any() else None
    recall = hits / int(fraud.sum()) if fraud.any() else None
    average = (float(average_precision_score(fraud, scores))
               if fraud.any() and not fraud.all() else None)
    return Quality(int(scores.size), int(fraud.sum()), precision, recall, average)


class LiveQuality:
    def __init__(self, max_decisions: int = 200_000, window: int = 5_000) -> None:
        self._decisions: OrderedDict[str, tuple[float, bool, str]] = OrderedDict()
        self._labels: OrderedDict[str, bool] = OrderedDict()  # waiting for their decision
        self._max_pending = max_decisions
        self._window = window
        self._joined: dict[str, deque[tuple[float, bool, bool]]] = {}

    @property
    def unmatched_labels(self) -> int:
        """Labels whose decision has not been seen (yet, or ever)."""
        return len(self._labels)

    def _join(self, version: str, score: float, flagged: bool, is_fraud: bool) -> None:
        pairs = self._joined.get(version)
        if pairs is None:
            pairs = self._joined[version] = deque(maxlen=self._window)
        pairs.append((score, flagged, is_fraud))

    def add(self, decisions: Iterable[tuple[str, float, bool, str]],
            labels: Iterable[tuple[str, bool]]) -> int:
        """A batch of decisions (id, score, flagged, model version) and labels (id,
        is_fraud); the number of pairs joined."""
        joined = sum(self.add_decision(*decision) for decision in decisions)
        return joined + sum(self.add_label(*label) for label in labels)

    def add_decision(self, transaction_id: str, score: float, flagged: bool,
                     model_version: str = "") -> bool:
        """Remember a decision; True when its label was already waiting and it joined."""
        is_fraud = self._labels.pop(transaction_id, None)
        if is_fraud is not None:
            self._join(model_version, score, flagged, is_fraud)
            return True
        _remember(self._decisions, transaction_id, (score, flagged, model_version),
                  self._max_pending)
        return False

    def add_label(self, transaction_id: str, is_fraud: bool) -> bool:
        """Join a confirmed label; False when its decision is not known (yet)."""
        decision = self._decisions.pop(transaction_id, None)
        if decision is None:
            _remember(self._labels, transaction_id, is_fraud, self._max_pending)
            return False
        score, flagged, version = decision
        self._join(version, score, flagged, is_fraud)
        return True

    def measure_by_version(self) -> dict[str, Quality]:
        return {version: _measure(list(pairs)) for version, pairs in self._joined.items()
                if pairs}

    def measure(self) -> Quality:
        return _measure([pair for pairs in self._joined.values() for pair in pairs])


def _measure(pairs: list[tuple[float, bool, bool]]) -> Quality:
    if not pairs:
        return Quality(0, 0, None, None, None)
    scores, flagged, fraud = (np.array(column) for column in zip(*pairs, strict=True))
    return measure_pairs(scores.astype(np.float64), flagged.astype(bool), fraud.astype(bool))


def _remember(pending: OrderedDict[str, T], key: str, value: T, limit: int) -> None:
    pending[key] = value
    pending.move_to_end(key)
    while len(pending) > limit:
        pending.popitem(last=False)
