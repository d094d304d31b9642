"""bench.handbook_features and bench.model_quality: the handbook's features and protocol."""

from __future__ import annotations

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
    from fraudstream.features.offline import compute_matrix

    frame = simulate(SimulationConfig(customers=300, terminals=600, days=40, seed=7))
    trials = (("fewer iterations", {"max_iter": 20}), ("small trees", {"max_leaf_nodes": 4}),
              ("more iterations", {"max_iter": 150}))
    chosen, baseline, steps = tune(frame, compute_matrix(frame), SplitPlan(19, 7, 7, 7),
                                   progress=lambda _: None, steps=trials)
    assert [s.change for s in steps] == [name for name, _ in trials]
    expected: dict[str, object] = {}
    best = baseline
    for step, (_, settings) in zip(steps, trials, strict=True):
        assert step.gain == pytest.approx(step.validation_ap - best)
        assert step.kept == (step.gain > 0)
        if step.kept:
            expected.update(settings)
            best = step.validation_ap
    assert chosen == expected
