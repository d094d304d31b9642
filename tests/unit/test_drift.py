"""stream.drift: PSI over a sliding window against the training baseline."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.features.definitions import N_FEATURES
from fraudstream.models.train import drift_baseline
from fraudstream.stream.drift import (
    ALERT_PSI,
    CALENDAR_FEATURES,
    DriftMonitor,
    alerted,
    population_stability,
)

NAMES = ["amount", "count"]


def baseline(rng: np.random.Generator) -> dict[str, dict[str, list[float]]]:
    training = np.column_stack([rng.lognormal(3.5, 0.6, 50_000),
                                rng.poisson(3, 50_000).astype(float)])
    edges = {}
    for j, name in enumerate(NAMES):
        column = training[:, j]
        cuts = np.unique(np.quantile(column, np.linspace(0, 1, 11)[1:-1]))
        counts = np.bincount(np.searchsorted(cuts, column, side="right"),
                             minlength=cuts.size + 1)
        edges[name] = {"edges": cuts.tolist(), "proportions": (counts / column.size).tolist()}
    return edges


def batches(rng: np.random.Generator, n: int, amount_scale: float = 1.0,
            size: int = 100) -> list[np.ndarray]:
    return [np.column_stack([rng.lognormal(3.5, 0.6, size) * amount_scale,
                             rng.poisson(3, size).astype(float)]) for _ in range(n)]


def test_same_distribution_stays_below_the_alert_level() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(baseline(rng), NAMES, window=5000, block=500)
    for batch in batches(rng, 60):
        monitor.observe(batch)
    psi = monitor.psi()
    assert monitor.rows == 5000
    assert all(value < 0.05 for value in psi.values()), psi


def test_a_shifted_feature_crosses_the_level_and_the_others_do_not() -> None:
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(baseline(rng), NAMES, window=5000, block=500)
    for batch in batches(rng, 60, amount_scale=1.8):
        monitor.observe(batch)
    psi = monitor.psi()
    assert psi["amount"] > ALERT_PSI
    assert psi["count"] < 0.05


def test_the_window_forgets_old_blocks() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(baseline(rng), NAMES, window=2000, block=500)
    for batch in batches(rng, 40, amount_scale=2.0):
        monitor.observe(batch)
    assert monitor.psi()["amount"] > ALERT_PSI
    for batch in batches(rng, 40):
        monitor.observe(batch)
    assert monitor.rows == 2000
    assert monitor.psi()["amount"] < 0.05


def test_rows_wait_for_a_whole_block() -> None:
    rng = np.random.default_rng(4)
    monitor = DriftMonitor(baseline(rng), NAMES, window=2000, block=500)
    assert not monitor.observe(batches(rng, 1, size=300)[0])
    assert monitor.rows == 0 and monitor.psi() == {"amount": 0.0, "count": 0.0}
    assert monitor.observe(batches(rng, 1, size=300)[0])
    assert monitor.rows == 600


def test_psi_of_identical_shares_is_zero_and_grows_with_distance() -> None:
    even = np.full(4, 0.25)
    assert population_stability(even, even) == 0.0
    near = population_stability(np.array([0.3, 0.2, 0.25, 0.25]), even)
    far = population_stability(np.array([0.7, 0.1, 0.1, 0.1]), even)
    assert 0 < near < far


def test_an_artifact_baseline_is_accepted_and_a_missing_feature_refused() -> None:
    matrix = np.random.default_rng(5).random((1000, N_FEATURES))
    from_training = drift_baseline(matrix)
    assert DriftMonitor(from_training, list(from_training)).names == list(from_training)
    with pytest.raises(ValueError, match="no drift baseline for"):
        DriftMonitor(from_training, ["not_a_feature"])


def test_the_calendar_flags_are_left_out_of_the_drift_alert() -> None:
    psi = {"amount": 0.3, "is_weekend": 1.15, "is_night": 0.9}
    assert alerted(psi) == {"amount": 0.3}
    assert {"is_weekend", "is_night"} == CALENDAR_FEATURES
