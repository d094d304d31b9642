"""Settings for our default model chosen on the validation window only (issue 16, item 5).

Each step changes one setting of the default HistGradientBoosting model; it is kept when
it raises average precision on the validation window (a model fitted on days 101-107,
scored on days 115-121, the same protocol moved back by delay plus test days). The gain
of every step, kept or not, is reported; the test week sees only the final settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fraudstream.bench.validation_window import Change, ValidationWindow

STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("300 boosting iterations", {"max_iter": 300}),
    ("31 leaves per tree", {"max_leaf_nodes": 31}),
    ("L2 regularisation 1.0", {"l2_regularization": 1.0}),
    ("at least 50 samples per leaf", {"min_samples_leaf": 50}),
)


def tune(window: ValidationWindow, matrix: np.ndarray, base: dict[str, float],
         progress: Callable[[str], None] = print,
         steps: tuple[tuple[str, dict[str, Any]], ...] = STEPS,
         ) -> tuple[dict[str, Any], list[Change]]:
    """(chosen settings, every step) on ``window`` for the features of ``matrix``, whose
    validation metrics with the default settings are ``base``."""
    chosen: dict[str, Any] = {}
    best = base
    done = []
    for change, settings in steps:
        progress(f"trying {change}")
        metrics = window.metrics(matrix, {**chosen, **settings})
        gain = metrics["average_precision"] - best["average_precision"]
        kept = gain > 0
        done.append(Change(f"setting: {change}", metrics, gain, kept))
        if kept:
            chosen, best = {**chosen, **settings}, metrics
    return chosen, done
