"""Calibrated scores: a strictly increasing piecewise-linear map from the model's
probability to a calibrated one, chosen on the validation window.

The map is a small table of knots (raw score, calibrated probability), both strictly
increasing, from (0, 0) to (1, 1), applied by linear interpolation (``np.interp``; the
decision kernel does the same arithmetic after the tree ensemble). Strictly increasing, it
keeps the model's ranking: ROC AUC, average precision and card precision@k are unchanged;
the probabilities (Brier score, log loss) and what a threshold means are what move.

Fitted on the validation window's scores and labels, by one of:

- ``isotonic``: pool-adjacent-violators blocks (scikit-learn's ``isotonic_regression``),
  one knot per block at its mean raw score, its fraud share shrunk by one pseudo-observation
  at that score (no knot says 0 or 1 for sure); a knot that would not rise is dropped, so
  ties stay ties and distinct scores stay distinct ("centred" isotonic regression);
- ``sigmoid`` (Platt): a logistic regression on the score's log-odds, tabulated at
  ``SIGMOID_KNOTS`` log-odds between -12 and 12;
- ``none``: the identity.

``choose_calibration`` cross-fits each method over the window's days (fitted on the odd
days, scored on the even ones, and the other way round) and keeps the lowest log loss; the
chosen method is then fitted on the whole window. Fitting needs scikit-learn (training
only); applying a table needs NumPy alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS: tuple[str, ...] = ("none", "isotonic", "sigmoid")
SIGMOID_KNOTS = 49
LOG_ODDS_SPAN = 12.0
EPSILON = 1e-15  # probabilities are clipped this far from 0 and 1 for the log loss


class CalibrationError(ValueError):
    """A calibration table that is not a strictly increasing map of [0, 1]."""


@dataclass(frozen=True, eq=False)  # arrays: compare the knots, not the objects
class Calibration:
    method: str
    scores: np.ndarray  # knots' raw scores: 0, ..., 1, strictly increasing
    probabilities: np.ndarray  # knots' calibrated probabilities: 0, ..., 1, strictly increasing

    def __post_init__(self) -> None:
        check_knots(self.scores, self.probabilities)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw ``scores`` (the definition the kernel follows)."""
        return np.asarray(np.interp(np.asarray(scores, np.float64), self.scores,
                                    self.probabilities))

    @property
    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scores, self.probabilities

    def as_manifest(self, days: Mapping[str, list[int]],
                    cross_fitted: Mapping[str, float]) -> dict[str, Any]:
        """The manifest entry: the table, the days it was chosen on and why."""
        return {"method": self.method, "scores": self.scores.tolist(),
                "probabilities": self.probabilities.tolist(), "chosen_on_days": dict(days),
                "cross_fitted_log_loss": {k: float(v) for k, v in cross_fitted.items()}}

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any] | None) -> Calibration:
        """The manifest's table; the identity for a model trained without one."""
        if not entry:
            return IDENTITY
        return cls(str(entry["method"]), np.asarray(entry["scores"], np.float64),
                   np.asarray(entry["probabilities"], np.float64))


def check_knots(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise CalibrationError(f"calibration knots of shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise CalibrationError("calibration knots must be finite")
    if x[0] != 0.0 or x[-1] != 1.0 or y[0] != 0.0 or y[-1] != 1.0:
        raise CalibrationError("calibration knots must run from (0, 0) to (1, 1)")
    if not (np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)):
        raise CalibrationError("calibration knots must be strictly increasing")


IDENTITY = Calibration("none", np.array([0.0, 1.0]), np.array([0.0, 1.0]))


def _table(method: str, x: np.ndarray, y: np.ndarray) -> Calibration:
    """Knots from (0, 0) through the interior points to (1, 1), keeping only those that
    rise in both coordinates."""
    keep_x, keep_y = [0.0], [0.0]
    for a, b in zip(x.tolist(), y.tolist(), strict=True):
        if keep_x[-1] < a < 1.0 and keep_y[-1] < b < 1.0:
            keep_x.append(a)
            keep_y.append(b)
    return Calibration(method, np.array([*keep_x, 1.0]), np.array([*keep_y, 1.0]))


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    from sklearn.isotonic import isotonic_regression  # training only

    unique, inverse = np.unique(np.asarray(scores, np.float64), return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    positives = np.bincount(inverse, weights=np.asarray(labels, np.float64))
    fitted = isotonic_regression(positives / weights, sample_weight=weights)
    block = np.cumsum(np.r_[True, fitted[1:] != fitted[:-1]]) - 1
    count = np.bincount(block, weights=weights)
    mean_score = np.bincount(block, weights=weights * unique) / count
    frauds = np.bincount(block, weights=positives)
    return _table("isotonic", mean_score, (frauds + mean_score) / (count + 1.0))


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1.0 - EPSILON)
    return np.asarray(np.log(p) - np.log1p(-p))


def fit_sigmoid(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    from sklearn.linear_model import LogisticRegression  # training only

    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(_log_odds(scores)[:, None], np.asarray(labels))
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not slope > 0.0:  # no increasing map: nothing to calibrate with
        return IDENTITY
    grid = np.linspace(-LOG_ODDS_SPAN, LOG_ODDS_SPAN, SIGMOID_KNOTS)
    return _table("sigmoid", 1.0 / (1.0 + np.exp(-grid)),
                  1.0 / (1.0 + np.exp(-(slope * grid + intercept))))


def fit(method: str, scores: np.ndarray, labels: np.ndarray) -> Calibration:
    if method not in METHODS:
        raise ValueError(f"unknown calibration {method!r}; choose from {', '.join(METHODS)}")
    if method == "none" or len(np.unique(labels)) < 2:
        return IDENTITY
    return fit_isotonic(scores, labels) if method == "isotonic" else fit_sigmoid(scores, labels)


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, np.float64), EPSILON, 1.0 - EPSILON)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities, np.float64)
                          - np.asarray(labels, np.float64)) ** 2))


def cross_fitted_log_loss(method: str, scores: np.ndarray, labels: np.ndarray,
                          days: np.ndarray) -> float:
    """Log loss of ``method`` fitted on the odd days and scored on the even ones, and the
    other way round, over the whole window; NaN when a half has one class only."""
    odd = np.asarray(days) % 2 == 1
    out = np.empty(len(scores), np.float64)
    for held in (odd, ~odd):
        if len(np.unique(labels[~held])) < 2 or not held.any():
            return float("nan")
        out[held] = fit(method, scores[~held], labels[~held]).apply(scores[held])
    return log_loss(labels, out)


def choose_calibration(scores: np.ndarray, labels: np.ndarray, days: np.ndarray,
                       methods: tuple[str, ...] = METHODS,
                       ) -> tuple[Calibration, dict[str, float]]:
    """(the method of lowest cross-fitted log loss, fitted on all of ``scores``; each
    method's cross-fitted log loss). The identity when no method can be cross-fitted."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    losses = {m: cross_fitted_log_loss(m, scores, labels, days) for m in methods}
    finite = {m: v for m, v in losses.items() if np.isfinite(v)}
    if not finite:
        return IDENTITY, losses
    return fit(min(finite, key=finite.__getitem__), scores, labels), losses
