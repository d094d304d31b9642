"""bench.handbook_features and bench.model_quality: the handbook's features and protocol."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudstream.bench.handbook_features import HANDBOOK_FEATURES, handbook_features
from fraudstream.bench.model_quality import (
    OURS,
    PROTOCOL,
    Candidate,
    markdown,
    measure,
    plot_curves,
)
from fraudstream.bench.report import write_results
from fraudstream.models.evaluation import SplitPlan, time_split
from fraudstream.models.train import make_model
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.simulator.handbook import FraudCounts

T0 = 1_522_540_800_000


def frame_of(rows: list[tuple[float, int, int, float, int]]) -> pd.DataFrame:
    """(seconds, customer, terminal, amount, is_fraud) rows."""
    return pd.DataFrame({
        "timestamp": [T0 + int(s * 1000) for s, *_ in rows],
        "customer_id": [r[1] for r in rows], "terminal_id": [r[2] for r in rows],
        "amount": [r[3] for r in rows], "is_fraud": [r[4] for r in rows],
    })


def test_windows_by_hand() -> None:
    day = 86_400
    frame = frame_of([
        (0, 1, 9, 10.0, 1),             # Sunday 2018-04-01, night
        (3600 * 12, 1, 9, 20.0, 0),     # noon
        (day + 3600 * 13, 1, 8, 30.0, 0),  # Monday: the first row is more than a day old
        (8 * day + 10, 2, 9, 5.0, 0),   # terminal 9, 8 days on: rows 0 and 1 are 7-8 days old
    ])
    f = handbook_features(frame)
    assert list(f.columns) == list(HANDBOOK_FEATURES)
    assert f["TX_DURING_WEEKEND"].tolist() == [1, 1, 0, 0]  # day 8 is a Monday
    assert f["TX_DURING_NIGHT"].tolist() == [1, 0, 0, 1]
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].tolist() == [1, 2, 1, 1]
    assert f["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"].tolist() == [10.0, 15.0, 20.0, 5.0]
    assert f["TERMINAL_ID_NB_TX_1DAY_WINDOW"].tolist() == [0, 0, 0, 1]  # row 1 only
    assert f["TERMINAL_ID_NB_TX_7DAY_WINDOW"].tolist() == [0, 0, 0, 2]
    assert f["TERMINAL_ID_RISK_7DAY_WINDOW"].tolist() == [0, 0, 0, 0.5]


# Printed by BaselineFeatureTransformation.ipynb for the last rows of the reference run:
# customer 7- and 30-day counts and means, terminal 1-, 7- and 30-day counts, 30-day risk.
PRINTED_TAIL = {
    1754150: (12, 67.047500, 72, 69.521111, 1, 4, 28, 0.0),
    1754151: (21, 22.173810, 93, 24.780753, 1, 9, 39, 0.0),
    1754152: (21, 7.400476, 65, 7.864462, 1, 5, 33, 0.0),
    1754153: (16, 107.052500, 51, 102.919608, 1, 6, 28, 0.0),
    1754154: (24, 35.308333, 119, 37.251513, 1, 12, 41, 0.02439),
}


@pytest.mark.slow
def test_the_features_the_notebook_prints(
        handbook_reference: tuple[pd.DataFrame, FraudCounts]) -> None:
    frame = handbook_reference[0]
    tail = handbook_features(frame).iloc[-5:]
    for tx, expected in PRINTED_TAIL.items():
        row = tail.loc[tx]
        got = (row["CUSTOMER_ID_NB_TX_7DAY_WINDOW"], row["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"],
               row["CUSTOMER_ID_NB_TX_30DAY_WINDOW"], row["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"],
               row["TERMINAL_ID_NB_TX_1DAY_WINDOW"], row["TERMINAL_ID_NB_TX_7DAY_WINDOW"],
               row["TERMINAL_ID_NB_TX_30DAY_WINDOW"], row["TERMINAL_ID_RISK_30DAY_WINDOW"])
        np.testing.assert_allclose(got, expected, atol=5e-6, err_msg=str(tx))


@pytest.mark.slow
def test_the_protocol_sets_are_the_handbooks(
        handbook_reference: tuple[pd.DataFrame, FraudCounts]) -> None:
    frame = handbook_reference[0]
    train, test = time_split(frame, PROTOCOL)
    fraud = frame["is_fraud"].to_numpy() == 1
    # BaselineModeling.ipynb: train_df (67240, 23) with 598 frauds, test_df (58264, 23), 385.
    assert (int(train.sum()), int((train & fraud).sum())) == (67_240, 598)
    assert (int(test.sum()), int((test & fraud).sum())) == (58_264, 385)


def test_the_report_has_counts_and_one_row_per_model(tmp_path: Path) -> None:
    frame = simulate(SimulationConfig(customers=300, terminals=600, days=30, seed=7))
    quick = [Candidate("Logistic regression", "handbook", lambda: make_model("logreg")),
             Candidate(OURS, "fraudstream", lambda: make_model("hgb"))]
    data, curves = measure(frame, progress=lambda _: None, plan=SplitPlan(9, 7, 7, 7),
                           models=quick)
    write_results(tmp_path, "model", data, markdown(data))
    plot_curves(curves, tmp_path / "model-pr.png")
    saved = json.loads((tmp_path / "model.json").read_text())
    for part in ("train", "test"):
        assert set(saved["dataset"][part]) == {"transactions", "frauds"}
        assert saved["dataset"][part]["transactions"] > saved["dataset"][part]["frauds"] > 0
    assert [(m["name"], m["features"]) for m in saved["models"]] == [
        ("Logistic regression", "handbook"), (OURS, "fraudstream")]
    for row in saved["models"]:
        for metric in ("roc_auc", "average_precision", "card_precision_at_100"):
            assert 0.0 <= row[metric] <= 1.0
    assert "| fraudstream default | fraudstream |" in (tmp_path / "model.md").read_text()
    assert (tmp_path / "model-pr.png").stat().st_size > 1000


def test_tuning_keeps_only_the_steps_that_help_on_validation() -> None:
    from fraudstream.bench.model_tuning import tune
    from fraudstream.bench.validation_window import ValidationWindow
    from fraudstream.features.offline import compute_matrix

    frame = simulate(SimulationConfig(customers=300, terminals=600, days=40, seed=7))
    trials = (("fewer iterations", {"max_iter": 20}), ("small trees", {"max_leaf_nodes": 4}),
              ("more iterations", {"max_iter": 150}))
    window = ValidationWindow(frame, SplitPlan(19, 7, 7, 7))
    matrix = compute_matrix(frame)
    baseline = window.metrics(matrix)
    chosen, steps = tune(window, matrix, baseline, progress=lambda _: None, steps=trials)
    assert [s.change for s in steps] == [f"setting: {name}" for name, _ in trials]
    expected: dict[str, object] = {}
    best = baseline["average_precision"]
    for step, (_, settings) in zip(steps, trials, strict=True):
        assert step.gain == pytest.approx(step.metrics["average_precision"] - best)
        assert step.kept == (step.gain > 0)
        if step.kept:
            expected.update(settings)
            best = step.metrics["average_precision"]
    assert chosen == expected


def test_the_validation_window_never_reaches_the_test_week() -> None:
    from fraudstream.bench.validation_window import ValidationWindow

    frame = simulate(SimulationConfig(customers=200, terminals=400, days=40, seed=3))
    plan = SplitPlan(19, 7, 7, 7)
    window = ValidationWindow(frame, plan)
    day = frame["timestamp"].to_numpy() // 86_400_000 - frame["timestamp"].min() // 86_400_000
    used = window.fit_mask | window.check_mask
    assert day[used].max() < plan.start_day + plan.train_days  # ends with training
    assert window.days == {"train": [5, 11], "validate": [19, 25]}


def test_the_feature_study_adds_candidates_one_at_a_time() -> None:
    from fraudstream.bench.feature_study import (
        BASE_FEATURES,
        MIN_GAIN,
        FeatureCandidate,
        study,
    )
    from fraudstream.bench.validation_window import ValidationWindow
    from fraudstream.features.offline import compute_matrix

    frame = simulate(SimulationConfig(customers=300, terminals=600, days=40, seed=7))
    rng = np.random.default_rng(0)
    label = frame["is_fraud"].to_numpy(np.float64)
    trials = (FeatureCandidate("noise", "random numbers", lambda h: rng.random(h.n)),
              FeatureCandidate("leak", "the label itself", lambda h: label),
              FeatureCandidate("leak again", "the label once more", lambda h: label))
    window = ValidationWindow(frame, SplitPlan(19, 7, 7, 7))
    engine = compute_matrix(frame)
    choice = study(frame, engine, window, progress=lambda _: None, candidates=trials)
    assert [c.change.split(":")[0] for c in choice.changes] == [
        "feature noise", "feature leak", "feature leak again"]
    # The label is a perfect feature: kept; once it is in, nothing can add to it.
    assert choice.kept == ["leak"]
    assert choice.names == [*BASE_FEATURES, "leak"]
    assert choice.changes[1].metrics["average_precision"] == pytest.approx(1.0)
    best = choice.base["average_precision"]
    for change in choice.changes:
        assert change.gain == pytest.approx(change.metrics["average_precision"] - best)
        assert change.kept == (change.gain >= MIN_GAIN)
        if change.kept:
            best = change.metrics["average_precision"]
    assert choice.matrix.shape == (len(frame), len(BASE_FEATURES) + 1)


def test_every_candidate_is_computed_for_every_row() -> None:
    from fraudstream.bench.feature_study import CANDIDATES, History

    frame = simulate(SimulationConfig(customers=100, terminals=200, days=40, seed=5))
    history = History(frame)
    for candidate in CANDIDATES:
        column = candidate.compute(history)
        assert column.shape == (len(frame),) and np.isfinite(column).all(), candidate.name


def test_history_totals_by_hand() -> None:
    from fraudstream.bench.feature_study import History

    day = 86_400
    frame = frame_of([
        (0, 1, 9, 10.0, 1),                 # day 0
        (3600, 1, 9, 20.0, 0),              # day 0
        (3 * day, 1, 8, 30.0, 0),           # day 3
        (10 * day, 1, 9, 40.0, 0),          # day 10
        (10 * day + 60, 1, 9, 50.0, 0),     # day 10, a minute later
    ])
    h = History(frame)
    count, cents, days = h.customer(29, 0)  # the 30 days up to today, the row included
    assert count.tolist() == [1, 2, 3, 4, 5]
    assert cents.tolist() == [1000, 3000, 6000, 10000, 15000]
    assert days.tolist() == [1, 1, 2, 3, 3]
    count, cents, days = h.customer(29, 7)  # days d-29 .. d-7
    assert count.tolist() == [0, 0, 0, 3, 3] and days.tolist() == [0, 0, 0, 2, 2]
    assert h.mean(0, 0)[0].tolist() == [10.0, 15.0, 30.0, 40.0, 45.0]
    assert h.previous_gap_s.tolist() == [30 * day, 30 * day, 3600, 3 * day - 3600, 7 * day]
    count, frauds = h.terminal(6, 0)  # terminal days d-13 .. d-7
    assert count.tolist() == [0, 0, 0, 2, 2] and frauds.tolist() == [0, 0, 0, 1, 1]


def test_the_served_candidates_are_what_the_study_defined() -> None:
    """A candidate the engine serves is read from the engine's matrix in the study; its
    formula in the study, computed on the same saturated day totals, gives the same
    values."""
    from fraudstream.bench.feature_study import CANDIDATES, History, served
    from fraudstream.features.definitions import FEATURE_NAMES
    from fraudstream.features.offline import compute_matrix

    frame = simulate(SimulationConfig(customers=200, terminals=400, days=60, seed=9))
    engine = compute_matrix(frame)
    history = History(frame)
    kept = [c for c in CANDIDATES if served(c.name)]
    assert [c.name for c in kept] == list(FEATURE_NAMES[17:])
    for candidate in kept:
        column = engine[:, FEATURE_NAMES.index(candidate.name)]
        np.testing.assert_allclose(candidate.compute(history), column, rtol=1e-12,
                                   err_msg=candidate.name)


def test_the_gains_report_every_change_and_the_calibration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.bench import model_gains
    from fraudstream.bench.feature_study import CANDIDATES, study
    from fraudstream.bench.model_gains import BASE, TUNED
    from fraudstream.bench.model_tuning import STEPS, tune

    # Two candidates (one served, one not) and one setting keep it short.
    candidates, steps = (CANDIDATES[0], CANDIDATES[-1]), STEPS[:1]
    monkeypatch.setattr(model_gains, "study", functools.partial(study, candidates=candidates))
    monkeypatch.setattr(model_gains, "tune", functools.partial(tune, steps=steps))
    frame = simulate(SimulationConfig(customers=300, terminals=600, days=40, seed=7))
    quick = [Candidate(OURS, "fraudstream", lambda: make_model("hgb"))]
    data, _ = measure(frame, progress=lambda _: None, plan=SplitPlan(19, 7, 7, 7),
                      models=quick, tuning=True)
    tuning = data["tuning"]
    assert tuning["chosen_on_days"] == {"train": [5, 11], "validate": [19, 25]}
    assert len(tuning["steps"]) == len(candidates) + len(steps)
    for step in tuning["steps"]:
        assert {"change", "gain", "kept", "validation_average_precision",
                "validation_roc_auc", "validation_card_precision_at_100"} <= set(step)
    assert [m["name"] for m in data["models"]] == [OURS, BASE, TUNED]
    calibration = tuning["calibration"]
    assert calibration["method"] in ("none", "isotonic", "sigmoid")
    raw, calibrated = calibration["test"]["raw"], calibration["test"]["calibrated"]
    # A strictly increasing map: the ranking metrics are those of the raw scores.
    for metric in ("roc_auc", "average_precision", "card_precision_at_100"):
        assert calibrated[metric] == raw[metric]
    assert raw["roc_auc"] == data["models"][0]["roc_auc"]
    write_results(tmp_path, "model", data, markdown(data))
    text = (tmp_path / "model.md").read_text()
    assert "| change (one at a time, kept if it helps) |" in text
    assert "| fraudstream default, test week | Brier score | log loss |" in text
