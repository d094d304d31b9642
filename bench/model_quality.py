"""``fraudstream bench --only model``: our default model against the handbook's baselines,
on the handbook's reference dataset and its baseline protocol.

Protocol (handbook chapter 3, "Baseline fraud detection system"): train on the week from
2018-07-25 (day 115), a 7-day delay, test on the following week with the cards known to
be compromised removed (``models.evaluation.time_split``). The handbook's five models are
fitted on its 15 features, standardised on the training week as it does; ours on the
features our online engine serves (``features.offline.compute_matrix`` is its offline
twin). Metrics are the handbook's: ROC AUC, average precision, card precision@100.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from fraudstream.bench.handbook_features import HANDBOOK_FEATURES, handbook_features
from fraudstream.bench.model_gains import OURS, Beyond
from fraudstream.bench.model_gains import markdown as gains_markdown
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.models.evaluation import SplitPlan, evaluate, time_split
from fraudstream.models.train import make_model
from fraudstream.simulator.handbook import simulate_handbook

PROTOCOL = SplitPlan(start_day=115, train_days=7, delay_days=7, test_days=7)
# The handbook's published test-week table (BaselineModeling.ipynb), for the report.
HANDBOOK_PUBLISHED = {
    "Logistic regression": (0.871, 0.606, 0.291),
    "Decision tree with depth of two": (0.763, 0.496, 0.241),
    "Decision tree - unlimited depth": (0.788, 0.309, 0.243),
    "Random forest": (0.867, 0.658, 0.287),
    "XGBoost": (0.862, 0.639, 0.273),
}


@dataclass(frozen=True)
class Candidate:
    name: str
    features: str  # "handbook" or "fraudstream"
    make: Callable[[], Any]


def _xgboost() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(random_state=0, n_jobs=-1)


def candidates() -> list[Candidate]:
    """The handbook's baselines as it configures them (scaled inputs), then ours."""
    def scaled(model: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: make_pipeline(StandardScaler(), model())

    return [
        Candidate("Logistic regression", "handbook",
                  scaled(lambda: LogisticRegression(random_state=0))),
        Candidate("Decision tree with depth of two", "handbook",
                  scaled(lambda: DecisionTreeClassifier(max_depth=2, random_state=0))),
        Candidate("Decision tree - unlimited depth", "handbook",
                  scaled(lambda: DecisionTreeClassifier(random_state=0))),
        Candidate("Random forest", "handbook",
                  scaled(lambda: RandomForestClassifier(random_state=0, n_jobs=-1))),
        Candidate("XGBoost", "handbook", scaled(_xgboost)),
        Candidate(OURS, "fraudstream", lambda: make_model("hgb", 0)),
        Candidate("fraudstream logistic regression", "fraudstream",
                  lambda: make_model("logreg", 0)),
    ]


def _counts(frame: pd.DataFrame, mask: np.ndarray) -> dict[str, int]:
    return {"transactions": int(mask.sum()), "frauds": int(frame["is_fraud"][mask].sum())}


def measure(frame: pd.DataFrame, progress: Callable[[str], None] = print,
            plan: SplitPlan = PROTOCOL, models: list[Candidate] | None = None,
            tuning: bool = False,
            ) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fit every candidate on the protocol's training week and score its test week once.
    With ``tuning``, first choose features, settings and the calibration on the validation
    window (``Beyond``), then add their rows."""
    train, test = time_split(frame, plan)
    labels = frame["is_fraud"].to_numpy()
    progress("computing the handbook's features")
    matrices = {"handbook": handbook_features(frame).to_numpy(dtype=np.float64)}
    progress("computing our features (offline twin of the online engine)")
    matrices["fraudstream"] = compute_matrix(frame)
    test_frame = frame[test]
    rows: list[dict[str, Any]] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    beyond = Beyond.choose(frame, matrices, plan, progress) if tuning else None
    extra = beyond.candidates(matrices) if beyond else []
    test_scores: dict[str, np.ndarray] = {}
    for candidate in (models or candidates()) + extra:
        progress(f"fitting {candidate.name}")
        started = time.perf_counter()
        matrix = matrices[candidate.features]
        model = candidate.make().fit(matrix[train], labels[train])
        scores = model.predict_proba(matrix[test])[:, 1]
        test_scores[candidate.name] = scores
        metrics = evaluate(test_frame, labels[test], scores)
        rows.append({"name": candidate.name, "features": candidate.features, **metrics,
                     "fit_and_score_s": round(time.perf_counter() - started, 2)})
        precision, recall, _ = precision_recall_curve(labels[test], scores)
        curves[candidate.name] = (recall, precision)
    data = {
        "dataset": {"name": "fraud-detection handbook reference run (simulate --handbook)",
                    **_counts(frame, np.ones(len(frame), dtype=bool)),
                    "train": _counts(frame, train), "test": _counts(frame, test)},
        "protocol": {"train_days": [plan.start_day, plan.start_day + plan.train_days - 1],
                     "delay_days": plan.delay_days,
                     "test_days": [plan.test_start, plan.end_day - 1],
                     "known_compromised_cards_removed": True},
        "handbook_features": list(HANDBOOK_FEATURES),
        "features": list(FEATURE_NAMES),
        "models": rows,
        "tuning": None,
        "handbook_published": {name: dict(zip(("roc_auc", "average_precision",
                                               "card_precision_at_100"), values, strict=True))
                               for name, values in HANDBOOK_PUBLISHED.items()},
    }
    if beyond is not None and OURS in test_scores:
        data["tuning"] = beyond.report(test_frame, labels[test], test_scores[OURS])
    return data, curves


def table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "features", "ROC AUC", "average precision", "card precision@100",
               "handbook's published (AUC / AP / CP@100)"]
    rows = []
    for row in data["models"]:
        published = HANDBOOK_PUBLISHED.get(row["name"])
        rows.append([row["name"], row["features"], f"{row['roc_auc']:.3f}",
                     f"{row['average_precision']:.3f}", f"{row['card_precision_at_100']:.3f}",
                     " / ".join(f"{v:.3f}" for v in published) if published else "-"])
    return headers, rows


def markdown(data: dict[str, Any]) -> str:
    d = data["dataset"]
    head = (f"Handbook reference dataset: {d['transactions']:,} transactions, "
            f"{d['frauds']:,} frauds. Train week days {data['protocol']['train_days']}: "
            f"{d['train']['transactions']:,} transactions ({d['train']['frauds']} frauds); "
            f"test week days {data['protocol']['test_days']} after a "
            f"{data['protocol']['delay_days']}-day delay, known "
            f"compromised cards removed: {d['test']['transactions']:,} "
            f"({d['test']['frauds']} frauds).\n\n")
    text = head + markdown_table(*table(data))
    if data.get("tuning"):
        text += gains_markdown(data["tuning"])
    return text


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name, linewidth=2.2 if name == OURS else 1.2)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Test week, handbook reference dataset")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_model(out: Path, tune: bool = False) -> dict[str, Any]:
    print("generating the handbook's reference dataset")
    frame, _ = simulate_handbook()
    data, curves = measure(frame, tuning=tune)
    print_table("model quality: handbook protocol, test week", *table(data))
    write_results(out, "model", data, markdown(data), markdown_table(*table(data)))
    plot_curves(curves, out / "model-pr.png")
    return data
