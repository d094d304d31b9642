"""Settings for our default model chosen on the validation window only (issue 16, item 5).

Each step changes one setting of the default HistGradientBoosting model; it is kept when
it raises average precision on the validation window (a model fitted on days 101-107,
scored on days 115-121, the same protocol moved back by delay plus test days). The gain
of every step, kept or not, is reported; the test week sees only the final settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.models.evaluation import SplitPlan, evaluate, time_split, validation_plan
from fraudstream.models.train import make_model

STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("300 boosting iterations", {"max_iter": 300}),
    ("31 leaves per tree", {"max_leaf_nodes": 31}),
    ("L2 regularisation 1.0", {"l2_regularization": 1.0}),
    ("at least 50 samples per leaf", {"min_samples_leaf": 50}),
)


@dataclass(frozen=True)
class Step:
    change: str
    validation_ap: float
    gain: float  # over the best settings before this step
    kept: bool

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.change, "validation_average_precision": self.validation_ap,
                "gain": self.gain, "kept": self.kept}


def tune(frame: pd.DataFrame, matrix: np.ndarray, plan: SplitPlan,
         progress: Callable[[str], None] = print,
         steps: tuple[tuple[str, dict[str, Any]], ...] = STEPS,
         ) -> tuple[dict[str, Any], float, list[Step]]:
    """(chosen settings, the default's validation AP, every step) on ``plan``'s
    validation window."""
    checking = validation_plan(plan)
    fit, check = time_split(frame, checking)
    labels = frame["is_fraud"].to_numpy()
    check_frame = frame[check]

    def validation_ap(changes: dict[str, Any]) -> float:
        model = make_model("hgb", 0).set_params(**changes)
        scores = model.fit(matrix[fit], labels[fit]).predict_proba(matrix[check])[:, 1]
        return evaluate(check_frame, labels[check], scores)["average_precision"]

    progress(f"tuning on validation days {checking.test_start}..{checking.end_day - 1}")
    chosen: dict[str, Any] = {}
    best = baseline = validation_ap(chosen)
    done = []
    for change, settings in steps:
        progress(f"trying {change}")
        ap = validation_ap({**chosen, **settings})
        kept = ap > best
        done.append(Step(change, ap, ap - best, kept))
        if kept:
            chosen, best = {**chosen, **settings}, ap
    return chosen, baseline, done
