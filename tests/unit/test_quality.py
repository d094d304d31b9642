"""stream.quality.LiveQuality: decisions joined with late labels."""

from __future__ import annotations

import pytest

from fraudstream.stream.quality import LiveQuality


def test_precision_recall_and_average_precision_of_joined_pairs() -> None:
    live = LiveQuality()
    decisions = [("a", 0.9, True), ("b", 0.8, True), ("c", 0.2, False), ("d", 0.1, False)]
    for tx, score, flagged in decisions:
        live.add_decision(tx, score, flagged)
    for tx, fraud in [("a", True), ("b", False), ("c", True), ("d", False)]:
        assert live.add_label(tx, fraud)
    quality = live.measure()
    assert quality.labelled == 4 and quality.frauds == 2
    assert quality.precision == 0.5  # a right, b wrong
    assert quality.recall == 0.5  # a caught, c missed
    assert quality.average_precision == pytest.approx((1.0 + 2 / 3) / 2)


def test_labels_without_a_known_decision_wait_for_it_bounded() -> None:
    live = LiveQuality(max_decisions=2)
    for tx in ("a", "b", "c"):
        live.add_decision(tx, 0.5, False)
    assert not live.add_label("a", True)  # evicted: the oldest decision
    assert not live.add_label("zzz", True)
    assert live.unmatched_labels == 2
    assert live.add_label("c", False)
    assert not live.add_label("c", False)  # each decision joins once
    assert live.unmatched_labels == 2  # the bound: "a" gave way to the second "c"
    assert live.measure().labelled == 1


def test_a_label_read_before_its_decision_joins_when_the_decision_comes() -> None:
    live = LiveQuality()
    assert not live.add_label("x", True)
    assert live.add_decision("x", 0.95, True)
    assert live.unmatched_labels == 0
    quality = live.measure()
    assert quality.labelled == 1 and quality.precision == 1.0


def test_the_window_keeps_the_most_recent_pairs() -> None:
    live = LiveQuality(window=3)
    for i in range(10):
        live.add_decision(str(i), 0.9 if i < 5 else 0.1, i < 5)
        live.add_label(str(i), True)
    quality = live.measure()
    assert quality.labelled == 3
    assert quality.recall == 0.0  # the last three were all missed


def test_nothing_flagged_or_no_fraud_has_no_defined_measure() -> None:
    live = LiveQuality()
    assert live.measure().precision is None
    live.add_decision("a", 0.1, False)
    live.add_label("a", False)
    quality = live.measure()
    assert quality.precision is None and quality.recall is None
    assert quality.average_precision is None
