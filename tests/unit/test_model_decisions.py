"""models.decisions: outcome thresholds, threshold choice and reasons."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.models.decisions import (
    APPROVE,
    DECLINE,
    DECLINE_PRECISION,
    DEFAULT_THRESHOLDS,
    OUTCOMES,
    REVIEW,
    REVIEW_PRECISION,
    ReasonExplainer,
    choose_thresholds,
    decide,
)

THRESHOLDS = {"review": 0.5, "decline": 0.9}


def test_outcome_codes_and_names() -> None:
    assert (APPROVE, REVIEW, DECLINE) == (0, 1, 2)
    assert OUTCOMES[APPROVE] == "approve" and OUTCOMES[DECLINE] == "decline"


def test_decide_boundaries_are_inclusive() -> None:
    scores = np.array([0.0, np.nextafter(0.5, 0), 0.5, 0.7, np.nextafter(0.9, 0), 0.9, 1.0])
    codes = decide(scores, THRESHOLDS)
    assert codes.tolist() == [APPROVE, APPROVE, REVIEW, REVIEW, REVIEW, DECLINE, DECLINE]
    assert codes.dtype == np.int8


def test_decide_with_equal_thresholds_never_reviews() -> None:
    codes = decide(np.array([0.59, 0.6, 0.61]), {"review": 0.6, "decline": 0.6})
    assert codes.tolist() == [APPROVE, DECLINE, DECLINE]


def test_decide_empty() -> None:
    assert decide(np.array([]), THRESHOLDS).shape == (0,)


def precision_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    flagged = scores >= threshold
    return float(labels[flagged].mean())


def test_choose_thresholds_on_a_ranked_example() -> None:
    # Scores 0.00 .. 0.99; the nine highest are frauds.
    scores = np.arange(100) / 100
    labels = (np.arange(100) >= 91).astype(int)
    chosen = choose_thresholds(labels, scores)
    # At >= 0.90: 9 frauds of 10 flagged = 0.9 precision; at 0.89 it is 9/11.
    assert chosen["decline"] == scores[90]
    # At >= 0.70: 9 of 30 = 0.3; at 0.69 it is 9/31 < 0.3.
    assert chosen["review"] == scores[70]
    assert precision_at(labels, scores, chosen["decline"]) >= DECLINE_PRECISION
    assert precision_at(labels, scores, chosen["review"]) >= REVIEW_PRECISION
    assert precision_at(labels, scores, scores[69]) < REVIEW_PRECISION
    assert precision_at(labels, scores, scores[89]) < DECLINE_PRECISION


def test_defaults_when_no_threshold_reaches_either_precision() -> None:
    # Frauds have the lowest scores: precision is at most 10% everywhere.
    scores = np.arange(100) / 100
    labels = (np.arange(100) < 10).astype(int)
    assert choose_thresholds(labels, scores) == DEFAULT_THRESHOLDS


def test_review_is_capped_at_a_default_decline() -> None:
    # Precision reaches 0.3 only at >= 0.97 (1 of 3) and never reaches 0.9.
    scores = np.arange(100) / 100
    labels = np.zeros(100, dtype=int)
    labels[98] = 1
    chosen = choose_thresholds(labels, scores)
    assert chosen["decline"] == DEFAULT_THRESHOLDS["decline"]
    assert chosen["review"] == chosen["decline"]


def test_review_never_exceeds_decline_on_random_data() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        labels = (rng.random(300) < rng.uniform(0.01, 0.5)).astype(int)
        labels[0] = 1
        labels[1] = 0
        scores = np.clip(labels * rng.uniform(0, 0.6) + rng.random(300) * 0.6, 0, 1)
        chosen = choose_thresholds(labels, scores)
        assert chosen["review"] <= chosen["decline"]
        if chosen["decline"] != DEFAULT_THRESHOLDS["decline"]:
            assert precision_at(labels, scores, chosen["decline"]) >= DECLINE_PRECISION


def test_perfect_separation_declines_at_the_lowest_fraud_score() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.8])
    labels = np.array([0, 0, 0, 1, 1])
    chosen = choose_thresholds(labels, scores)
    assert chosen["decline"] == 0.6
    # 2 frauds of 5 at >= 0.1 is already 0.4 >= 0.3.
    assert chosen["review"] == 0.1


# --- reasons -----------------------------------------------------------------------------

NAMES = ["amount", "nb_tx", "night"]


def explainer(**kwargs) -> ReasonExplainer:
    params = {"names": NAMES, "means": [50.0, 2.0, 0.5], "stds": [10.0, 1.0, 0.5],
              "importances": [1.0, 1.0, 1.0]}
    params.update(kwargs)
    return ReasonExplainer(**params)


def test_reasons_only_for_non_approvals() -> None:
    matrix = np.array([[500.0, 9.0, 1.0], [500.0, 9.0, 1.0], [500.0, 9.0, 1.0]])
    codes = np.array([APPROVE, REVIEW, DECLINE], dtype=np.int8)
    reasons = explainer().reasons(matrix, codes)
    assert reasons[0] == []
    assert reasons[1] == reasons[2] == ["amount", "nb_tx", "night"]


def test_all_approved_gives_empty_lists() -> None:
    reasons = explainer().reasons(np.ones((4, 3)), np.zeros(4, dtype=np.int8))
    assert reasons == [[], [], [], []]


def test_largest_weighted_z_ranks_first() -> None:
    # z = |x - mean| / std: amount 2.0, nb_tx 5.0, night 1.0
    row = np.array([[70.0, 7.0, 1.0]])
    codes = np.array([DECLINE])
    assert explainer().reasons(row, codes) == [["nb_tx", "amount", "night"]]
    # Importance reweights: amount 2.0 * 3 = 6 > nb_tx 5.0 * 1 > night 1.0 * 0.5
    weighted = explainer(importances=[3.0, 1.0, 0.5])
    assert weighted.reasons(row, codes) == [["amount", "nb_tx", "night"]]


def test_distance_below_the_mean_counts_too() -> None:
    row = np.array([[20.0, 2.5, 0.5]])  # amount 3 std below the mean
    assert explainer().reasons(row, np.array([REVIEW]))[0][0] == "amount"


def test_zero_contributions_are_not_reasons() -> None:
    row = np.array([[50.0, 4.0, 1.0]])  # amount exactly at its mean
    assert explainer().reasons(row, np.array([REVIEW])) == [["nb_tx", "night"]]
    # Negative importance is clipped to zero: never a reason.
    clipped = explainer(importances=[1.0, -2.0, 1.0])
    assert clipped.reasons(row, np.array([REVIEW])) == [["night"]]


def test_zero_std_is_treated_as_one() -> None:
    ex = explainer(stds=[0.0, 1.0, 1.0])
    row = np.array([[53.0, 4.0, 0.5]])  # amount: |53 - 50| / 1 = 3 > nb_tx 2
    assert ex.reasons(row, np.array([DECLINE])) == [["amount", "nb_tx"]]


def test_top_limits_the_number_of_reasons() -> None:
    ex = ReasonExplainer(NAMES, [0, 0, 0], [1, 1, 1], [1, 1, 1], top=1)
    assert ex.reasons(np.array([[1.0, 3.0, 2.0]]), np.array([REVIEW])) == [["nb_tx"]]


def test_from_manifest() -> None:
    ex = ReasonExplainer.from_manifest(
        NAMES, {"means": [0, 0, 0], "stds": [1, 1, 1], "importances": [0.1, 0.2, 0.3]})
    assert ex.reasons(np.array([[1.0, 1.0, 1.0]]), np.array([DECLINE])) == [
        ["night", "nb_tx", "amount"]]


@pytest.mark.parametrize("flagged", [[1], [0, 2], [2]])
def test_reasons_land_on_the_right_rows(flagged: list[int]) -> None:
    matrix = np.array([[60.0, 2.0, 0.5], [50.0, 9.0, 0.5], [50.0, 2.0, 0.0]])
    codes = np.zeros(3, dtype=np.int8)
    codes[flagged] = REVIEW
    reasons = explainer().reasons(matrix, codes)
    own = [["amount"], ["nb_tx"], ["night"]]
    for i in range(3):
        assert reasons[i] == (own[i] if i in flagged else [])
