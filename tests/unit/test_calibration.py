"""models.calibration: strictly increasing piecewise-linear maps chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.models.calibration import (
    IDENTITY,
    Calibration,
    CalibrationError,
    brier,
    choose_calibration,
    fit,
    fit_isotonic,
    log_loss,
)


def overconfident(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores twice as far from 0.5 in log-odds as the true probabilities, and the days."""
    rng = np.random.default_rng(seed)
    true_log_odds = rng.normal(-3.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_log_odds))).astype(np.int64)
    scores = 1 / (1 + np.exp(-2.0 * true_log_odds))
    return scores, labels, np.arange(n) % 7


def test_the_identity_changes_no_score_and_no_bit() -> None:
    scores = np.random.default_rng(1).random(1000)
    assert np.array_equal(IDENTITY.apply(scores), scores)
    assert IDENTITY.apply(np.array([-0.5, 1.5])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_fitted_map_is_strictly_increasing_and_keeps_the_ranking(method: str) -> None:
    scores, labels, _ = overconfident()
    calibration = fit(method, scores, labels)
    x, y = calibration.knots
    assert x[0] == y[0] == 0.0 and x[-1] == y[-1] == 1.0
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    calibrated = calibration.apply(scores)
    assert np.array_equal(np.argsort(calibrated, kind="stable"),
                          np.argsort(scores, kind="stable"))
    assert roc_auc_score(labels, calibrated) == roc_auc_score(labels, scores)
    assert average_precision_score(labels, calibrated) == average_precision_score(labels, scores)
    # Overconfident scores: calibrated, both the Brier score and the log loss drop.
    assert brier(labels, calibrated) < brier(labels, scores)
    assert log_loss(labels, calibrated) < log_loss(labels, scores)


def test_isotonic_knots_by_hand() -> None:
    # Scores 0.1 (labels 0, 0), 0.2 (1, 0) and 0.3 (0): 0.2 and 0.3 pool into one block of
    # three, mean score 0.7 / 3, one fraud; 0.1 is a block of 0 frauds in 2. One pseudo
    # observation at each block's mean score: (0 + 0.1) / 3 and (1 + 0.7 / 3) / 4.
    calibration = fit_isotonic(np.array([0.1, 0.1, 0.2, 0.2, 0.3]), np.array([0, 0, 1, 0, 0]))
    assert calibration.scores.tolist() == pytest.approx([0.0, 0.1, 0.7 / 3, 1.0])
    assert calibration.probabilities.tolist() == pytest.approx(
        [0.0, 0.1 / 3, (1 + 0.7 / 3) / 4, 1.0])


def test_a_block_of_only_frauds_is_not_certain() -> None:
    calibration = fit_isotonic(np.array([0.1, 0.2, 0.9, 0.95]), np.array([0, 0, 1, 1]))
    assert calibration.probabilities[-2] < 1.0
    assert calibration.apply(np.array([0.99]))[0] < 1.0


def test_one_class_gives_the_identity() -> None:
    assert fit("isotonic", np.array([0.1, 0.2]), np.array([0, 0])) is IDENTITY


def test_the_choice_is_the_lowest_cross_fitted_log_loss() -> None:
    scores, labels, days = overconfident()
    calibration, losses = choose_calibration(scores, labels, days)
    assert set(losses) == {"none", "isotonic", "sigmoid"}
    assert calibration.method == min(losses, key=losses.__getitem__) != "none"
    # Already calibrated scores: nothing beats leaving them alone by much.
    rng = np.random.default_rng(2)
    p = rng.random(5000) * 0.2
    calibrated_labels = (rng.random(5000) < p).astype(np.int64)
    _, losses = choose_calibration(p, calibrated_labels, np.arange(5000) % 2)
    assert losses["none"] <= min(losses.values()) + 1e-3


def test_the_manifest_entry_round_trips() -> None:
    scores, labels, days = overconfident()
    calibration, losses = choose_calibration(scores, labels, days)
    entry = calibration.as_manifest({"train": [101, 107], "validate": [115, 121]}, losses)
    assert entry["chosen_on_days"]["validate"] == [115, 121]
    again = Calibration.from_manifest(entry)
    assert np.array_equal(again.apply(scores), calibration.apply(scores))
    assert Calibration.from_manifest(None) is IDENTITY


@pytest.mark.parametrize("x, y", [
    ([0.0, 0.5, 1.0], [0.0, 0.5]),          # shapes differ
    ([0.0, 0.5, 0.5, 1.0], [0.0, 0.2, 0.3, 1.0]),  # not strictly increasing
    ([0.0, 0.5, 1.0], [0.0, 0.6, 0.6]),     # does not end at 1
    ([0.1, 1.0], [0.0, 1.0]),               # does not start at 0
    ([0.0, float("nan"), 1.0], [0.0, 0.5, 1.0]),
])
def test_a_table_that_is_not_an_increasing_map_is_refused(x: list[float],
                                                          y: list[float]) -> None:
    with pytest.raises(CalibrationError):
        Calibration("isotonic", np.array(x), np.array(y))
