"""models.train: what is chosen on the validation window, and the manifest says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraudstream.models.calibration import Calibration, choose_calibration
from fraudstream.models.decisions import choose_thresholds
from fraudstream.models.evaluation import default_plan, time_split, validation_plan
from fraudstream.models.train import make_model, train
from fraudstream.simulator.generator import SimulationConfig, simulate

CONFIG = SimulationConfig(customers=300, terminals=600, days=40, seed=7)


def test_thresholds_and_importances_come_from_the_validation_window(tmp_path: Path) -> None:
    from fraudstream.features.offline import compute_matrix

    frame = simulate(CONFIG)
    result = train(frame, tmp_path, kind="logreg", promote=False)
    manifest = json.loads((result.path / "manifest.json").read_text())
    plan = default_plan(CONFIG.days)
    checking = validation_plan(plan)
    assert manifest["training"]["days"] == {"train": [19, 25], "test": [33, 39]}
    assert manifest["validation"]["days"] == {"train": [5, 11], "test": [19, 25]}
    assert manifest["validation"]["chosen_on"]["calibration"] == "validation"
    assert manifest["validation"]["chosen_on"]["thresholds"] == "validation (calibrated scores)"
    assert manifest["validation"]["chosen_on"]["importances"] == "validation"
    assert manifest["calibration"]["chosen_on_days"] == {"train": [5, 11], "test": [19, 25]}

    # The same calibration and thresholds again from a model fitted on the validation
    # training days and scored on the validation window: nothing of the test window went
    # into them. The thresholds are chosen on the calibrated scores.
    matrix = compute_matrix(frame)
    labels = frame["is_fraud"].to_numpy()
    fit, check = time_split(frame, checking)
    model = make_model("logreg").fit(matrix[fit], labels[fit])
    scores = model.predict_proba(matrix[check])[:, 1]
    days = frame["timestamp"].to_numpy()[check] // 86_400_000
    calibration, losses = choose_calibration(scores, labels[check], days)
    recorded = Calibration.from_manifest(manifest["calibration"])
    assert recorded.scores.tolist() == calibration.scores.tolist()
    assert recorded.probabilities.tolist() == calibration.probabilities.tolist()
    assert manifest["calibration"]["method"] == calibration.method
    assert manifest["calibration"]["cross_fitted_log_loss"] == pytest.approx(losses,
                                                                             nan_ok=True)
    expected = choose_thresholds(labels[check], calibration.apply(scores))
    assert result.thresholds == expected
    assert manifest["thresholds"] == expected
    # The test week's Brier score and log loss, raw and calibrated, for the record.
    for metric in ("brier", "log_loss"):
        assert set(manifest["calibration"]["test"][metric]) == {"raw", "calibrated"}
