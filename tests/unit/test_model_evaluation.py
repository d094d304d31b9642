"""models.evaluation: the handbook's time split and card precision@k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.evaluation import (
    DAY_MS,
    SplitPlan,
    card_precision_at_k,
    default_plan,
    evaluate,
    time_split,
    validation_plan,
)

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z


def frame_of(rows: list[tuple[int, str, int]]) -> pd.DataFrame:
    """(day, customer, is_fraud) rows, each at noon of its day."""
    return pd.DataFrame({
        "timestamp": [T0 + day * DAY_MS + DAY_MS // 2 for day, _, _ in rows],
        "customer_id": [customer for _, customer, _ in rows],
        "is_fraud": [fraud for _, _, fraud in rows],
    })


def test_split_plan_days() -> None:
    plan = SplitPlan(start_day=10, train_days=7, delay_days=7, test_days=7)
    assert plan.test_start == 24
    assert plan.end_day == 31


def test_default_plan() -> None:
    assert default_plan(183) == SplitPlan(115, 7, 7, 7)
    assert default_plan(136) == SplitPlan(115, 7, 7, 7)
    assert default_plan(135) == SplitPlan(114, 7, 7, 7)
    assert default_plan(30) == SplitPlan(9, 7, 7, 7)
    assert default_plan(22) == SplitPlan(1, 7, 7, 7)
    with pytest.raises(ValueError, match="at least 22"):
        default_plan(21)


# Plan: train days 1-2, delay days 3-4, test days 5-6.
# For test day 5 the frauds of day 2 are known too, for test day 6 those of day 3.
PLAN = SplitPlan(start_day=1, train_days=2, delay_days=2, test_days=2)
ROWS = [
    (0, "early", 1),  # fraud before training: not known
    (0, "clean", 0),
    (1, "trained", 1),  # fraud in the training period: excluded from every test day
    (2, "clean", 0),
    (3, "seen3", 1),  # fraud on day 3 = the day before test day 6's delay window
    (4, "delay4", 1),  # fraud in the delay window only: never known
    (5, "trained", 0),
    (5, "seen3", 0),
    (5, "delay4", 1),
    (5, "early", 0),
    (5, "clean", 0),
    (6, "trained", 0),
    (6, "seen3", 1),
    (6, "delay4", 0),
    (6, "clean", 0),
    (7, "clean", 0),  # after the test period
]


def test_training_mask_covers_the_training_days_only() -> None:
    train, _ = time_split(frame_of(ROWS), PLAN)
    days = [day for day, _, _ in ROWS]
    assert train.tolist() == [day in (1, 2) for day in days]


def test_known_compromised_customers_are_removed_from_the_test_set() -> None:
    frame = frame_of(ROWS)
    _, test = time_split(frame, PLAN)
    kept = sorted(zip(frame.loc[test, "timestamp"] // DAY_MS - T0 // DAY_MS,
                      frame.loc[test, "customer_id"], strict=True))
    assert kept == [
        (5, "clean"), (5, "delay4"), (5, "early"), (5, "seen3"),
        (6, "clean"), (6, "delay4"),
    ]


def test_day_numbers_are_relative_to_the_first_transaction() -> None:
    shifted = frame_of(ROWS)
    shifted["timestamp"] += 40 * DAY_MS
    _, test_a = time_split(frame_of(ROWS), PLAN)
    _, test_b = time_split(shifted, PLAN)
    assert test_a.tolist() == test_b.tolist()


def test_integer_customer_ids() -> None:
    frame = frame_of([(0, "1", 0), (1, "2", 1), (3, "2", 0), (3, "3", 0)])
    frame["customer_id"] = frame["customer_id"].astype(int)
    train, test = time_split(frame, SplitPlan(1, 1, 1, 1))
    assert train.tolist() == [False, True, False, False]
    assert test.tolist() == [False, False, False, True]


def test_no_known_customers_keeps_the_whole_test_period() -> None:
    frame = frame_of([(0, "a", 0), (1, "a", 0), (2, "b", 0), (3, "a", 0), (3, "b", 1)])
    _, test = time_split(frame, SplitPlan(0, 1, 1, 2))
    assert test.tolist() == [False, False, True, True, True]


def test_card_precision_at_k_by_hand() -> None:
    frame = pd.DataFrame({
        "timestamp": [T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000,
                      T0 + DAY_MS + 1, T0 + DAY_MS + 2, T0 + DAY_MS + 3],
        "customer_id": ["A", "A", "B", "C", "A", "B", "C"],
        "is_fraud": [0, 1, 0, 1, 0, 1, 1],
    })
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.95, 0.5])
    # Day 0 per card: A (max 0.9, fraud), B (0.8, no), C (0.7, fraud) -> top 2: A, B -> 1/2.
    # Day 1: B (0.95, fraud), C (0.5, fraud), A (0.2, no) -> top 2: B, C -> 2/2.
    assert card_precision_at_k(frame, scores, k=2) == 0.75
    # k=1: day 0 A is fraudulent (1), day 1 B is (1).
    assert card_precision_at_k(frame, scores, k=1) == 1.0
    # k larger than the cards of a day still divides by k; A and C, found on day 0, are
    # blocked and leave day 1's ranking: (2/5 + 1/5) / 2.
    assert card_precision_at_k(frame, scores, k=5) == pytest.approx(0.3)


def test_card_precision_removes_cards_detected_on_earlier_days() -> None:
    """The handbook's definition against the naive one (cards found stay in)."""
    frame = pd.DataFrame({
        "timestamp": [T0 + 1, T0 + 2, T0 + 3,
                      T0 + DAY_MS + 1, T0 + DAY_MS + 2, T0 + DAY_MS + 3,
                      T0 + 2 * DAY_MS + 1, T0 + 2 * DAY_MS + 2, T0 + 2 * DAY_MS + 3],
        "customer_id": [1, 2, 3, 1, 2, 3, 1, 2, 3],
        "is_fraud": [1, 0, 0, 1, 0, 1, 1, 1, 0],
        #           day 0    | day 1    | day 2
    })
    scores = np.array([0.9, 0.5, 0.1, 0.9, 0.5, 0.4, 0.9, 0.3, 0.2])
    # Day 0: top 2 = 1 (fraud), 2 -> 1/2; card 1 is found and blocked.
    # Day 1: cards 2, 3 remain; top 2 = 2, 3 (fraud) -> 1/2; card 3 is found.
    # Day 2: card 2 remains alone; fraud -> 1/2.
    assert card_precision_at_k(frame, scores, k=2) == pytest.approx(0.5)
    # Keeping found cards in would give day 1: 1, 2 -> 1/2; day 2: 1, 2 -> 2/2.
    naive = (1 / 2 + 1 / 2 + 2 / 2) / 3
    assert card_precision_at_k(frame, scores, k=2) != pytest.approx(naive)


def test_card_precision_blocks_only_the_cards_found_in_the_top_k() -> None:
    frame = pd.DataFrame({
        "timestamp": [T0 + 1, T0 + 2, T0 + DAY_MS + 1, T0 + DAY_MS + 2],
        "customer_id": ["A", "B", "A", "B"],
        "is_fraud": [1, 1, 1, 1],
    })
    # Day 0: only A is in the top 1; B, missed, stays in day 1's ranking.
    assert card_precision_at_k(frame, np.array([0.9, 0.1, 0.9, 0.8]), k=1) == 1.0


def test_card_precision_counts_a_card_once_per_day() -> None:
    frame = pd.DataFrame({
        "timestamp": [T0 + 1, T0 + 2, T0 + 3],
        "customer_id": ["A", "A", "B"],
        "is_fraud": [1, 1, 0],
    })
    assert card_precision_at_k(frame, np.array([0.9, 0.8, 0.1]), k=2) == 0.5


def test_card_precision_of_an_empty_frame() -> None:
    empty = pd.DataFrame({"timestamp": [], "customer_id": [], "is_fraud": []})
    assert card_precision_at_k(empty, np.array([]), k=10) == 0.0


def test_evaluate_needs_both_classes() -> None:
    frame = frame_of([(0, "a", 0), (0, "b", 0)])
    with pytest.raises(ValueError, match="only one class"):
        evaluate(frame, np.array([0, 0]), np.array([0.1, 0.2]))


def test_evaluate_perfect_ranking() -> None:
    frame = frame_of([(0, "a", 1), (0, "b", 0), (0, "c", 0)])
    metrics = evaluate(frame, np.array([1, 0, 0]), np.array([0.9, 0.2, 0.1]))
    assert metrics["roc_auc"] == 1.0
    assert metrics["average_precision"] == 1.0
    assert metrics["card_precision_at_100"] == 0.01


def test_validation_plan_is_the_handbook_shift_on_the_reference_protocol() -> None:
    # Train 101-107, delay 108-114, validate 115-121: the final training week, whose labels
    # are known when the final model is fitted.
    assert validation_plan(SplitPlan(115, 7, 7, 7)) == SplitPlan(101, 7, 7, 7)


def test_validation_window_never_reaches_the_delay_or_the_test_window() -> None:
    for start in range(8, 130):
        plan = SplitPlan(start, 7, 7, 7)
        checking = validation_plan(plan)
        assert checking.start_day >= 0
        assert checking.end_day <= plan.start_day + plan.train_days
        assert checking.test_start >= checking.start_day + checking.train_days


def test_validation_plan_shortens_training_on_short_data() -> None:
    assert validation_plan(SplitPlan(9, 7, 7, 7)) == SplitPlan(0, 2, 7, 7)
    with pytest.raises(ValueError, match="validation window"):
        validation_plan(SplitPlan(1, 7, 7, 7))
