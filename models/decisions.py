"""Scores to decisions (approve | review | decline) and the reasons given for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

APPROVE, REVIEW, DECLINE = 0, 1, 2
OUTCOMES: tuple[str, ...] = ("approve", "review", "decline")
DEFAULT_THRESHOLDS = {"review": 0.5, "decline": 0.9}
REVIEW_PRECISION = 0.3
DECLINE_PRECISION = 0.9


def choose_thresholds(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Lowest scores reaching the target precisions; defaults where none does."""
    from sklearn.metrics import precision_recall_curve  # training only: not in a worker

    precision, _, thresholds = precision_recall_curve(labels, scores)

    def lowest(target: float, fallback: float) -> float:
        hits = np.flatnonzero(precision[:-1] >= target)
        return float(thresholds[hits[0]]) if hits.size else fallback

    decline = lowest(DECLINE_PRECISION, DEFAULT_THRESHOLDS["decline"])
    review = min(lowest(REVIEW_PRECISION, DEFAULT_THRESHOLDS["review"]), decline)
    return {"review": review, "decline": decline}


def decide(scores: np.ndarray, thresholds: Mapping[str, float]) -> np.ndarray:
    """Outcome codes: DECLINE at or above ``decline``, REVIEW at or above ``review``."""
    codes = np.zeros(scores.shape[0], dtype=np.int8)
    codes[scores >= thresholds["review"]] = REVIEW
    codes[scores >= thresholds["decline"]] = DECLINE
    return codes


class ReasonExplainer:
    """Top contributing features: distance from the training mean, in standard deviations,
    weighted by the feature's permutation importance. Computed only for non-approvals."""

    def __init__(self, names: Sequence[str], means: Sequence[float], stds: Sequence[float],
                 importances: Sequence[float], top: int = 3) -> None:
        self._names = list(names)
        self._means = np.asarray(means, dtype=np.float64)
        self._stds = np.where(np.asarray(stds) > 0, np.asarray(stds, dtype=np.float64), 1.0)
        self._weights = np.clip(np.asarray(importances, dtype=np.float64), 0, None)
        self._top = top

    @classmethod
    def from_manifest(cls, names: Sequence[str], explain: Mapping[str, Sequence[float]],
                      ) -> ReasonExplainer:
        return cls(names, explain["means"], explain["stds"], explain["importances"])

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(means, stds with zeros as 1, non-negative weights, how many reasons)."""
        return self._means, self._stds, self._weights, self._top

    def reasons(self, matrix: np.ndarray, codes: np.ndarray) -> list[list[str]]:
        """The definition (``models.decision_kernel`` computes the same, compiled): the
        ``top`` largest positive weighted distances, ties in feature order."""
        out: list[list[str]] = [[] for _ in range(matrix.shape[0])]
        flagged = np.flatnonzero(codes != APPROVE)
        if flagged.size == 0:
            return out
        z = np.abs(matrix[flagged] - self._means) / self._stds * self._weights
        top = np.argsort(-z, axis=1, kind="stable")[:, : self._top]
        for row, event in enumerate(flagged):
            out[event] = [self._names[j] for j in top[row] if z[row, j] > 0]
        return out
