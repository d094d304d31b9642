"""Scores to outcomes and reasons for a whole batch in one compiled call.

The same arithmetic as ``Calibration.apply`` (``np.interp`` over the model's calibration
knots), ``np.clip``, ``models.decisions.decide`` and ``ReasonExplainer.reasons`` (the
definitions, which the tests hold this to exactly), done in one pass per row: a batch of
one no longer pays for a dozen small NumPy calls, and only the flagged rows build their
lists of names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np

from fraudstream.features.jit import CACHE, warm_up
from fraudstream.models.calibration import IDENTITY, Calibration
from fraudstream.models.decisions import APPROVE, DECLINE, REVIEW, ReasonExplainer

njit = numba.njit(cache=CACHE, nogil=True)


@njit
def calibrated(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """``np.interp(x, xp, fp)`` for strictly increasing knots, with its arithmetic."""
    if x != x:  # NaN stays NaN
        return x
    last = xp.shape[0] - 1
    if x <= xp[0]:
        return float(fp[0])
    if x >= xp[last]:
        return float(fp[last])
    lo, hi = 0, last  # xp[lo] <= x < xp[hi]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo])
    return float(slope * (x - xp[lo]) + fp[lo])


@njit
def decide_and_explain(probabilities: np.ndarray, matrix: np.ndarray, review: float,
                       decline: float, means: np.ndarray, stds: np.ndarray,
                       weights: np.ndarray, top: int, knots_x: np.ndarray,
                       knots_y: np.ndarray,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(calibrated scores clipped to [0, 1], outcome codes, reason feature indices (-1:
    none), how many rows are not approved). The probabilities are calibrated first
    (knots ``knots_x``, ``knots_y``)."""
    n, width = matrix.shape
    scores = np.empty(n, np.float64)
    codes = np.zeros(n, np.int8)
    reasons = np.full((n, top), -1, np.int64)
    z = np.empty(width, np.float64)
    flagged = 0
    for i in range(n):
        score = calibrated(probabilities[i], knots_x, knots_y)
        if score < 0.0:
            score = 0.0
        elif score > 1.0:
            score = 1.0
        scores[i] = score
        if score >= decline:
            codes[i] = DECLINE
        elif score >= review:
            codes[i] = REVIEW
        else:
            continue
        flagged += 1
        for j in range(width):
            z[j] = abs(matrix[i, j] - means[j]) / stds[j] * weights[j]
        for r in range(top):
            best = -1
            for j in range(width):
                if z[j] > 0.0 and (best < 0 or z[j] > z[best]):
                    best = j
            if best < 0:
                break
            reasons[i, r] = best
            z[best] = -1.0  # taken
    return scores, codes, reasons, flagged


class BatchDecisions:
    """A calibration, thresholds (on calibrated scores) and an explainer, applied to a
    batch's probabilities."""

    def __init__(self, thresholds: Mapping[str, float], explainer: ReasonExplainer,
                 calibration: Calibration = IDENTITY) -> None:
        self._review = float(thresholds["review"])
        self._decline = float(thresholds["decline"])
        self._knots = tuple(np.ascontiguousarray(a, np.float64) for a in calibration.knots)
        means, stds, weights, self._top = explainer.parameters
        self._means, self._stds, self._weights = (np.ascontiguousarray(a, np.float64)
                                                  for a in (means, stds, weights))
        # Index -1 (no reason) picks the None at the end.
        self._names = np.array([*explainer.names, None], dtype=object)
        compile_decisions()

    def apply(self, probabilities: np.ndarray, matrix: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(scores, codes, reasons per row)."""
        matrix = np.ascontiguousarray(matrix, np.float64)
        if not matrix.flags.writeable:  # the kernel is compiled for writable arrays only
            matrix = matrix.copy()
        probabilities = np.ascontiguousarray(probabilities, np.float64)
        if not probabilities.flags.writeable:
            probabilities = probabilities.copy()
        scores, codes, chosen, any_flagged = decide_and_explain(
            probabilities, matrix, self._review, self._decline, self._means, self._stds,
            self._weights, self._top, *self._knots)
        reasons: list[list[str]] = [[] for _ in range(len(scores))]
        if any_flagged:
            flagged = np.flatnonzero(codes != APPROVE)
            picked = chosen[flagged]
            names = self._names[picked].tolist()
            short: list[bool] = np.asarray((picked < 0).any(axis=1)).tolist()
            for row, event in enumerate(flagged.tolist()):
                reasons[event] = ([name for name in names[row] if name is not None]
                                  if short[row] else names[row])
        return scores, codes, reasons


def compile_decisions() -> float:
    """Compile the kernel before any batch (once per process; see ``jit.warm_up``)."""
    one = np.ones(1, np.float64)
    x, y = IDENTITY.knots
    return warm_up("decision kernel", [decide_and_explain], lambda: decide_and_explain(
        one, np.ones((1, 1), np.float64), 0.5, 0.9, one, one, one, 3, x, y))
