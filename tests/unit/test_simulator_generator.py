"""fraudstream.simulator.generator: determinism, day independence and fraud scenarios."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from fraudstream.simulator.generator import (
    COLUMNS,
    DAY_MS,
    SimulationConfig,
    build_population,
    iter_days,
    simulate,
)

SMALL = SimulationConfig(customers=150, terminals=300, days=10, seed=3)
START_MS = 1_522_540_800_000  # 2018-04-01T00:00:00Z, the handbook's first day


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    # Large enough for stable rates: about 38k transactions.
    return simulate(SimulationConfig(customers=1000, terminals=2000, days=20, seed=0))


def test_columns_and_types(small: pd.DataFrame) -> None:
    assert list(small.columns) == COLUMNS
    assert len(small) > 1000
    for column in ("transaction_id", "timestamp", "customer_id", "terminal_id"):
        assert np.issubdtype(small[column].dtype, np.integer), column
    assert set(small["is_fraud"].unique()) <= {0, 1}
    assert set(small["fraud_scenario"].unique()) <= {0, 1, 2, 3}


def test_same_seed_same_frame(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), small)


def test_other_seed_differs(small: pd.DataFrame) -> None:
    other = simulate(SimulationConfig(customers=150, terminals=300, days=10, seed=4))
    assert not other.equals(small)
    assert not np.array_equal(other["amount"].to_numpy()[:100],
                              small["amount"].to_numpy()[:100])


def test_days_do_not_depend_on_the_number_of_days_simulated(small: pd.DataFrame) -> None:
    longer = simulate(SimulationConfig(customers=150, terminals=300, days=20, seed=3))
    head = longer[longer["timestamp"] < START_MS + 10 * DAY_MS].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, small)
    assert len(longer) > len(small)


def test_one_day_is_the_same_from_iter_days(small: pd.DataFrame) -> None:
    day6 = next(iter_days(SMALL, first_day=6)).reset_index(drop=True)
    expected = small[(small["timestamp"] >= START_MS + 6 * DAY_MS)
                     & (small["timestamp"] < START_MS + 7 * DAY_MS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(day6, expected)


def test_timestamps_sorted_and_inside_their_day() -> None:
    frames = list(iter_days(SMALL))
    assert len(frames) == SMALL.days
    for day, frame in enumerate(frames):
        ts = frame["timestamp"].to_numpy()
        assert len(ts) > 0
        assert np.all(np.diff(ts) >= 0), day
        assert ts.min() > START_MS + day * DAY_MS
        assert ts.max() < START_MS + (day + 1) * DAY_MS


def test_whole_frame_sorted_with_unique_increasing_ids(small: pd.DataFrame) -> None:
    assert small["timestamp"].is_monotonic_increasing
    assert small["transaction_id"].tolist() == list(range(len(small)))


def test_start_is_midnight_of_the_start_day() -> None:
    assert SimulationConfig().start_ms == START_MS
    late = SimulationConfig(start=datetime(2018, 4, 1, 17, 45, tzinfo=UTC))
    assert late.start_ms == START_MS
    other = simulate(SimulationConfig(customers=50, terminals=100, days=1,
                                      start=datetime(2020, 2, 29, tzinfo=UTC)))
    day_start = int(datetime(2020, 2, 29, tzinfo=UTC).timestamp()) * 1000
    assert other["timestamp"].between(day_start, day_start + DAY_MS - 1).all()


def test_every_amount_over_220_is_fraud(medium: pd.DataFrame) -> None:
    high = medium[medium["amount"] > 220]
    assert len(high) > 50
    assert (high["is_fraud"] == 1).all()
    assert (high["fraud_scenario"] != 0).all()


def test_scenario_one_is_only_amounts_over_220(medium: pd.DataFrame) -> None:
    scenario1 = medium[medium["fraud_scenario"] == 1]
    assert len(scenario1) > 0
    assert (scenario1["amount"] > 220).all()


def test_fraud_flag_matches_scenario(medium: pd.DataFrame) -> None:
    assert ((medium["is_fraud"] == 1) == (medium["fraud_scenario"] > 0)).all()


def test_amounts_are_positive_with_two_decimals(medium: pd.DataFrame) -> None:
    amount = medium["amount"].to_numpy()
    assert (amount >= 0).all()
    assert np.allclose(amount * 100, np.round(amount * 100), atol=1e-6)


def test_fraud_rate_is_plausible(medium: pd.DataFrame) -> None:
    # Expected roughly: scenario 2 ~ 21 of 2000 terminals compromised on average (~1%),
    # scenario 3 ~ 28 of 1000 customers, a third of their payments (~1%), scenario 1 rare.
    rate = medium["is_fraud"].mean()
    assert 0.005 < rate < 0.05
    shares = medium["fraud_scenario"].value_counts(normalize=True)
    assert 0.002 < shares.get(2, 0) < 0.03
    assert 0.002 < shares.get(3, 0) < 0.03
    assert 0 < shares.get(1, 0) < 0.005


def test_compromised_terminals_are_fraud_on_every_later_transaction(
        medium: pd.DataFrame) -> None:
    scenario2 = medium[medium["fraud_scenario"] == 2]
    terminals = scenario2.groupby("terminal_id")["timestamp"].min()
    later = medium.merge(terminals.rename("first_fraud"), left_on="terminal_id",
                         right_index=True)
    # A terminal stays compromised for 28 days: the rest of the day of its first
    # scenario-2 fraud is certainly inside that window, so every payment there is fraud.
    end_of_day = START_MS + ((later["first_fraud"] - START_MS) // DAY_MS + 1) * DAY_MS
    window = later[(later["timestamp"] >= later["first_fraud"])
                   & (later["timestamp"] < end_of_day)]
    assert len(window) > len(terminals)
    assert (window["is_fraud"] == 1).all()


def test_population_layout() -> None:
    population = build_population(SMALL)
    assert population.mean_amount.shape == (SMALL.customers,)
    assert np.allclose(population.std_amount, population.mean_amount / 2)
    assert ((population.mean_amount >= 5) & (population.mean_amount <= 100)).all()
    assert population.terminal_offsets[0] == 0
    assert population.terminal_offsets[-1] == len(population.terminal_ids)
    assert (population.terminal_counts >= 0).all()
    assert ((population.terminal_ids >= 0) & (population.terminal_ids < SMALL.terminals)).all()


@pytest.mark.parametrize("changes", [{"customers": 0}, {"terminals": 0}, {"days": 0},
                                     {"radius": 0.0}])
def test_invalid_configs(changes: dict) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**changes)


def test_amount_scale_injects_drift_in_genuine_amounts_only() -> None:
    import dataclasses

    import numpy as np

    from fraudstream.simulator.generator import SimulationConfig, simulate

    base = SimulationConfig(customers=200, terminals=400, days=5, seed=3)
    normal = simulate(base)
    drifted = simulate(dataclasses.replace(base, amount_scale=2.0))
    genuine = (normal["is_fraud"] == 0) & (drifted["is_fraud"] == 0)
    ratio = drifted["amount"][genuine] / normal["amount"][genuine]
    assert len(normal) == len(drifted)
    assert np.median(ratio) == pytest.approx(2.0, abs=0.01)
    with pytest.raises(ValueError, match="amount_scale"):
        SimulationConfig(amount_scale=0.0)
