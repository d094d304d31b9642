"""stream.shadow.ShadowBudget: the challenger's time stays under its share of the champion's."""

from __future__ import annotations

import pytest

from fraudstream.stream.shadow import ShadowBudget


def run(budget: ShadowBudget, batches: int, champion_s: float, shadow_s: float) -> int:
    shadowed = 0
    for _ in range(batches):
        budget.record_champion(champion_s)
        if budget.allow():
            budget.record_shadow(shadow_s)
            shadowed += 1
    return shadowed


def test_a_cheap_challenger_shadows_every_batch() -> None:
    budget = ShadowBudget(0.25)
    assert run(budget, 1000, champion_s=1e-3, shadow_s=0.1e-3) == 1000
    assert budget.share == pytest.approx(0.1, rel=0.05)


def test_an_expensive_challenger_is_held_to_its_share() -> None:
    budget = ShadowBudget(0.25)
    shadowed = run(budget, 2000, champion_s=1e-3, shadow_s=2e-3)  # 8x its allowance
    assert 0.08 < shadowed / 2000 < 0.16  # about a quarter of the time: 1 batch in 8
    # One shadowed batch overshoots by its own cost over the decayed champion time (the
    # last ~50 batches): never more.
    assert budget.share <= 0.25 + 2e-3 / (50 * 1e-3)


def test_the_share_follows_a_change_in_cost() -> None:
    budget = ShadowBudget(0.25)
    run(budget, 500, champion_s=1e-3, shadow_s=2e-3)
    assert run(budget, 500, champion_s=1e-3, shadow_s=0.05e-3) > 450


def test_a_share_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ShadowBudget(0)
