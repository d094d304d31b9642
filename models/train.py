"""Train a fraud model on simulated transactions and write a versioned artifact."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.features.offline import compute_matrix
from fraudstream.models.artifact import sha256_of, write_artifact
from fraudstream.models.calibration import brier, choose_calibration, log_loss
from fraudstream.models.compiled import compiled_entries
from fraudstream.models.decisions import choose_thresholds
from fraudstream.models.evaluation import (
    SplitPlan,
    default_plan,
    evaluate,
    time_split,
    validation_plan,
)
from fraudstream.models.registry import Registry

MODEL_KINDS = ("hgb", "logreg")
# make_model's settings are fixed; they were chosen on a validation window that ends before
# the reference protocol's training starts (day 115), never on a test window.
HYPER_PARAMETERS_CHOSEN_ON = "validation: train days 94-100, validate days 108-114"
DRIFT_BINS = 10
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    metrics: dict[str, dict[str, float]]
    thresholds: dict[str, float]
    plan: SplitPlan
    calibration: dict[str, Any]  # the manifest's entry
    train_rows: int
    test_rows: int


def make_model(kind: str, seed: int = 0) -> Any:
    if kind == "hgb":
        # Chosen on a validation split before the test protocol's training week (train
        # days 94-100, test 108-114 of the default dataset); scikit-learn's defaults
        # overfit one week of data. `fraudstream bench --only model --tune-model` checks
        # them on the handbook protocol's validation window, one change at a time
        # (bench/model_tuning.py), and reports whether any change would gain.
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05,
                                              max_leaf_nodes=15, min_samples_leaf=100,
                                              early_stopping=False, random_state=seed)
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(MODEL_KINDS)}")


def drift_baseline(matrix: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Per-feature quantile bins and the share of training rows in each (PSI baseline)."""
    baseline = {}
    for j, name in enumerate(FEATURE_NAMES):
        column = matrix[:, j]
        edges = np.unique(np.quantile(column, np.linspace(0, 1, DRIFT_BINS + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, column, side="right"),
                             minlength=edges.size + 1)
        baseline[name] = {"edges": edges.tolist(),
                          "proportions": (counts / max(1, column.size)).tolist()}
    return baseline


def _report(version: str, metrics: dict[str, dict[str, float]], plan: SplitPlan,
            train_rows: int, test_rows: int, checking: SplitPlan,
            calibration: dict[str, Any]) -> str:
    lines = [f"# Model {version}", "",
             f"Train days {plan.start_day}..{plan.start_day + plan.train_days - 1}, "
             f"delay {plan.delay_days} days, test days {plan.test_start}..{plan.end_day - 1}; "
             f"{train_rows} training and {test_rows} test transactions. Thresholds and "
             f"importances were chosen on validation days {checking.test_start}.."
             f"{checking.end_day - 1} (a model fitted on days {checking.start_day}.."
             f"{checking.start_day + checking.train_days - 1}).", "",
             "| model | ROC AUC | average precision | card precision@100 |",
             "| --- | --- | --- | --- |"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m['roc_auc']:.4f} | {m['average_precision']:.4f} "
                     f"| {m['card_precision_at_100']:.4f} |")
    test = calibration["test"]
    losses = ", ".join(f"{m} {v:.5f}" for m, v in calibration["cross_fitted_log_loss"].items())
    lines += ["", (f"Scores are calibrated ({calibration['method']}, "
                   f"{len(calibration['scores'])} knots)" if calibration["method"] != "none"
                   else "Scores are the model's probabilities (no calibration did better)")
              + f", chosen on the same validation days by cross-fitted log loss ({losses}); "
              f"the thresholds are on these scores. Test Brier score "
              f"{test['brier']['raw']:.6f} raw, {test['brier']['calibrated']:.6f} calibrated; "
              f"log loss {test['log_loss']['raw']:.5f} raw, "
              f"{test['log_loss']['calibrated']:.5f} calibrated. The map is strictly "
              f"increasing: the ranking metrics above are those of the raw scores."]
    return "\n".join(lines) + "\n"


def _days(plan: SplitPlan) -> dict[str, list[int]]:
    """First and last day of each window of ``plan``, for the manifest."""
    return {"train": [plan.start_day, plan.start_day + plan.train_days - 1],
            "test": [plan.test_start, plan.end_day - 1]}


def _fit(kind: str, seed: int, matrix: np.ndarray, labels: np.ndarray,
         mask: np.ndarray, what: str) -> Any:
    if len(np.unique(labels[mask])) < 2:
        raise ValueError(f"the {what} period has only one class: simulate more data")
    return make_model(kind, seed).fit(matrix[mask], labels[mask])


def train(frame: pd.DataFrame, registry_root: Path, kind: str = "hgb", seed: int = 0,
          plan: SplitPlan | None = None, promote: bool = True,
          progress: Progress = lambda _: None) -> TrainResult:
    """Fit ``kind`` and the logistic baseline on the time split; write and register it.

    Thresholds and the importances behind reasons are chosen on the validation window
    (``validation_plan``), with a model of the same kind fitted on the days before it; the
    test window is scored once, for the reported metrics."""
    make_model(kind)  # validate the kind before any heavy work
    total_days = int((frame["timestamp"].max() - frame["timestamp"].min()) // 86_400_000) + 1
    plan = plan or default_plan(total_days)
    checking = validation_plan(plan)
    progress("computing features (offline engine)")
    matrix = compute_matrix(frame)
    labels = frame["is_fraud"].to_numpy().astype(np.int8)
    train_mask, test_mask = time_split(frame, plan)
    fit_mask, check_mask = time_split(frame, checking)

    progress(f"choosing the calibration, thresholds and importances on days "
             f"{checking.test_start}..{checking.end_day - 1}")
    checker = _fit(kind, seed, matrix, labels, fit_mask, "validation training")
    x_check, y_check = matrix[check_mask], labels[check_mask]
    if len(np.unique(y_check)) < 2:
        raise ValueError("the validation window has only one class: simulate more data")
    check_scores = checker.predict_proba(x_check)[:, 1]
    check_days = frame["timestamp"].to_numpy()[check_mask] // 86_400_000
    calibration, losses = choose_calibration(check_scores, y_check, check_days)
    thresholds = choose_thresholds(y_check, calibration.apply(check_scores))
    validation = evaluate(frame[check_mask], y_check, check_scores)
    sample = min(len(y_check), 5000)
    importance = permutation_importance(checker, x_check[:sample], y_check[:sample],
                                        scoring="average_precision", n_repeats=3,
                                        random_state=seed)

    metrics: dict[str, dict[str, float]] = {}
    fitted: dict[str, Any] = {}
    test_frame = frame[test_mask]
    x_test, y_test = matrix[test_mask], labels[test_mask]
    for name in dict.fromkeys([kind, "logreg"]):
        progress(f"fitting {name} on {int(train_mask.sum())} transactions")
        fitted[name] = _fit(name, seed, matrix, labels, train_mask, "training")
        metrics[name] = evaluate(test_frame, y_test, fitted[name].predict_proba(x_test)[:, 1])

    model = fitted[kind]
    raw = model.predict_proba(x_test)[:, 1]
    calibrated = calibration.apply(raw)
    calibration_entry = {
        **calibration.as_manifest(_days(checking), losses),
        "test": {"brier": {"raw": brier(y_test, raw), "calibrated": brier(y_test, calibrated)},
                 "log_loss": {"raw": log_loss(y_test, raw),
                              "calibrated": log_loss(y_test, calibrated)}}}
    x_train = matrix[train_mask]
    created = datetime.now(UTC)
    registry = Registry(registry_root)
    registry.root.mkdir(parents=True, exist_ok=True)
    stamp = created.strftime("%Y%m%dT%H%M%S")
    version = f"{stamp}-{kind}"
    while registry.version_dir(version).exists():
        time.sleep(1)
        version = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{kind}"
    means: list[float] = x_train.mean(axis=0).tolist()
    stds: list[float] = x_train.std(axis=0).tolist()
    manifest = {
        "version": version,
        "created_at": created.isoformat(),
        "model_kind": kind,
        "feature_names": list(FEATURE_NAMES),
        "feature_schema": feature_schema_digest(),
        # Scores are the model's probabilities through this map; the thresholds apply to
        # them.
        "calibration": calibration_entry,
        "thresholds": thresholds,
        "metrics": metrics,
        "training": {"start_day": plan.start_day, "train_days": plan.train_days,
                     "delay_days": plan.delay_days, "test_days": plan.test_days,
                     "train_rows": int(train_mask.sum()), "test_rows": int(test_mask.sum()),
                     "seed": seed, "days": _days(plan)},
        # What was chosen where: the test window only gives the reported metrics.
        "validation": {"days": _days(checking), "rows": int(check_mask.sum()),
                       "metrics": {kind: validation},
                       "chosen_on": {"calibration": "validation",
                                     "thresholds": "validation (calibrated scores)",
                                     "importances": "validation",
                                     "hyper_parameters": HYPER_PARAMETERS_CHOSEN_ON}},
        "libraries": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                      "numpy": np.__version__, "joblib": joblib.__version__},
        "explain": {"means": means, "stds": stds,
                    "importances": importance.importances_mean.tolist()},
        "drift_baseline": drift_baseline(x_train),
    }
    report = _report(version, metrics, plan, int(train_mask.sum()), int(test_mask.sum()),
                     checking, calibration_entry)
    progress("compiling the scorer")
    path = write_artifact(registry.version_dir(version), model, manifest,
                          extra_files={"report.md": report},
                          build=lambda d: compiled_entries(model, d, means, stds))
    if promote:
        registry.promote(version, FEATURE_NAMES, feature_schema_digest(), by="train")
    progress(f"wrote {path} (model sha256 {sha256_of(path / 'model.joblib')[:12]})")
    return TrainResult(version, path, metrics, thresholds, plan, calibration_entry,
                       int(train_mask.sum()), int(test_mask.sum()))
