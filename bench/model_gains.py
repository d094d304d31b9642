"""Beyond the handbook's baselines, every choice made on the validation window (issue 16,
item 5): features (``bench.feature_study``), then model settings (``bench.model_tuning``),
then the calibration of the default model's scores (``models.calibration``). Each change
is reported with its validation figures; the test week is scored once, for the report,
by ``bench.model_quality``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.bench.feature_study import (
    BASE_FEATURES,
    CANDIDATE_NAMES,
    MIN_GAIN,
    FeatureChoice,
    served,
    study,
)
from fraudstream.bench.model_tuning import tune
from fraudstream.bench.report import markdown_table
from fraudstream.bench.validation_window import Change, ValidationWindow
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.models.calibration import Calibration, brier, choose_calibration, log_loss
from fraudstream.models.evaluation import SplitPlan, evaluate
from fraudstream.models.train import make_model

BASE = "fraudstream before the feature study"
TUNED = "fraudstream tuned on validation"
OURS = "fraudstream default"


@dataclass(frozen=True)
class Beyond:
    window: ValidationWindow
    features: FeatureChoice
    settings: dict[str, Any]
    setting_changes: list[Change]
    calibration: Calibration
    calibration_losses: dict[str, float]

    @classmethod
    def choose(cls, frame: pd.DataFrame, matrices: dict[str, np.ndarray], plan: SplitPlan,
               progress: Callable[[str], None] = print) -> Beyond:
        """Features, settings and the calibration, each chosen on the validation window.
        Adds the matrices its rows need to ``matrices``."""
        window = ValidationWindow(frame, plan)
        days = window.days
        progress(f"choosing on validation days {days['validate']} (fitted on "
                 f"{days['train']})")
        engine = matrices["fraudstream"]
        features = study(frame, engine, window, progress)
        kept = [c.metrics for c in features.changes if c.kept]
        best = kept[-1] if kept else features.base
        settings, setting_changes = tune(window, features.matrix, best, progress)
        progress("calibrating the default model's scores")
        scores = window.scores(engine)
        calibration, losses = choose_calibration(
            scores, window.labels[window.check_mask], window.check_days)
        matrices["fraudstream base"] = engine[:, [FEATURE_NAMES.index(n)
                                                  for n in BASE_FEATURES]]
        matrices["study"] = features.matrix
        return cls(window, features, settings, setting_changes, calibration, losses)

    @property
    def consistent(self) -> bool:
        """The study keeps exactly the candidates the engine serves."""
        return set(self.features.kept) == {n for n in CANDIDATE_NAMES if served(n)}

    def candidates(self, matrices: dict[str, np.ndarray]) -> list[Any]:
        from fraudstream.bench.model_quality import Candidate

        settings = dict(self.settings)
        tuned_features = "fraudstream" if self.consistent else "study"
        if self.consistent:
            matrices.pop("study", None)
        return [Candidate(BASE, "fraudstream base", lambda: make_model("hgb", 0)),
                Candidate(TUNED, tuned_features,
                          lambda: make_model("hgb", 0).set_params(**settings))]

    def report(self, test_frame: pd.DataFrame, test_labels: np.ndarray,
               test_scores: np.ndarray) -> dict[str, Any]:
        """What was chosen where, and the default model's test week with and without the
        calibration."""
        calibrated = self.calibration.apply(test_scores)
        test = {}
        for name, scores in (("raw", test_scores), ("calibrated", calibrated)):
            test[name] = {**evaluate(test_frame, test_labels, scores),
                          "brier": brier(test_labels, scores),
                          "log_loss": log_loss(test_labels, scores)}
        return {
            "chosen_on_days": self.window.days,
            "base_features": list(BASE_FEATURES),
            "base_validation": self.features.base,
            "feature_min_gain": MIN_GAIN,
            "kept_features": self.features.kept,
            "served_features": list(FEATURE_NAMES),
            "kept_are_served": self.consistent,
            "settings": self.settings,
            "steps": [c.as_dict() for c in [*self.features.changes, *self.setting_changes]],
            "calibration": {
                "method": self.calibration.method,
                "knots": len(self.calibration.scores),
                "cross_fitted_validation_log_loss": self.calibration_losses,
                "test": test,
            },
        }


def markdown(tuning: dict[str, Any]) -> str:
    days = tuning["chosen_on_days"]
    base = tuning["base_validation"]
    text = (f"\nEvery choice below was made on validation days {days['validate']} (a model "
            f"fitted on days {days['train']}); the test week was scored once, for the table "
            f"above. Features first, starting from the {len(tuning['base_features'])} "
            f"served before this study (validation AP {base['average_precision']:.4f}, "
            f"ROC AUC {base['roc_auc']:.4f}, card precision@100 "
            f"{base['card_precision_at_100']:.4f}): a candidate is kept when it adds at "
            f"least {tuning['feature_min_gain']} validation AP; then the model's settings "
            f"(kept when they add any).\n\n")
    text += markdown_table(
        ["change (one at a time, kept if it helps)", "validation AP", "gain",
         "validation ROC AUC", "validation CP@100", "kept"],
        [[s["change"], f"{s['validation_average_precision']:.4f}", f"{s['gain']:+.4f}",
          f"{s['validation_roc_auc']:.4f}", f"{s['validation_card_precision_at_100']:.4f}",
          "yes" if s["kept"] else "no"] for s in tuning["steps"]])
    if not tuning["kept_are_served"]:
        text += ("\nThe study keeps features the online engine does not serve (or drops "
                 "ones it serves): `fraudstream default` is on the served features, "
                 f"`{TUNED}` on the study's choice.\n")
    cal = tuning["calibration"]
    losses = ", ".join(f"{m} {v:.5f}" for m, v in cal["cross_fitted_validation_log_loss"]
                       .items())
    text += (f"\nCalibration of `{OURS}`'s scores, chosen on the same validation days by "
             f"cross-fitted log loss ({losses}): **{cal['method']}**, a strictly increasing "
             f"piecewise-linear map of {cal['knots']} knots applied after the trees. On the "
             "test week it moves the probabilities, not the ranking: ROC AUC, average "
             "precision and card precision@100 are those of the raw scores.\n\n")
    raw, calibrated = cal["test"]["raw"], cal["test"]["calibrated"]
    text += markdown_table(
        [f"{OURS}, test week", "Brier score", "log loss", "ROC AUC", "average precision",
         "card precision@100"],
        [[name, f"{m['brier']:.6f}", f"{m['log_loss']:.5f}", f"{m['roc_auc']:.4f}",
          f"{m['average_precision']:.4f}", f"{m['card_precision_at_100']:.4f}"]
         for name, m in (("raw scores", raw), ("calibrated", calibrated))])
    return text
