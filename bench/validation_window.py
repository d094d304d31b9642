"""The protocol's validation window, where every choice beyond the handbook's baselines is
made (issue 16, item 5): a model fitted on the validation training week and scored on the
validation week, the protocol moved back by the delay and the test week
(``models.evaluation.validation_plan``). The test week is never scored here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.features.definitions import DAY_MS
from fraudstream.models.evaluation import SplitPlan, evaluate, time_split, validation_plan
from fraudstream.models.train import make_model


@dataclass(frozen=True)
class Change:
    """One change tried on the validation window, against the best before it."""

    change: str
    metrics: dict[str, float]  # validation roc_auc, average_precision, card_precision_at_100
    gain: float  # in validation average precision
    kept: bool

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.change, "gain": self.gain, "kept": self.kept,
                **{f"validation_{k}": v for k, v in self.metrics.items()}}

class ValidationWindow:
    """The protocol's validation window: a default-settings (or ``settings``) model fitted
    on its training week, scored on its validation week."""

    def __init__(self, frame: pd.DataFrame, plan: SplitPlan) -> None:
        self.plan = validation_plan(plan)
        self.fit_mask, self.check_mask = time_split(frame, self.plan)
        self.labels = frame["is_fraud"].to_numpy()
        self.check_frame = frame[self.check_mask]
        self.check_days = (frame["timestamp"].to_numpy()[self.check_mask] // DAY_MS)

    @property
    def days(self) -> dict[str, list[int]]:
        p = self.plan
        return {"train": [p.start_day, p.start_day + p.train_days - 1],
                "validate": [p.test_start, p.end_day - 1]}

    def scores(self, matrix: np.ndarray, settings: dict[str, Any] | None = None) -> np.ndarray:
        model = make_model("hgb", 0).set_params(**(settings or {}))
        model.fit(matrix[self.fit_mask], self.labels[self.fit_mask])
        return np.asarray(model.predict_proba(matrix[self.check_mask])[:, 1])

    def metrics(self, matrix: np.ndarray, settings: dict[str, Any] | None = None,
                ) -> dict[str, float]:
        return evaluate(self.check_frame, self.labels[self.check_mask],
                        self.scores(matrix, settings))

