"""Small real model artifacts for registry and reload tests: a logistic regression fitted
on random rows, written through the artifact writer like a trained one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from fraudstream.features.definitions import FEATURE_NAMES, N_FEATURES, feature_schema_digest
from fraudstream.models.artifact import write_artifact


def write_model(root: Path, version: str, seed: int = 0,
                feature_names: Sequence[str] = FEATURE_NAMES,
                schema: str | None = None, fitted_width: int | None = None) -> Path:
    """A scoreable artifact ``root/version`` whose scores depend on ``seed``.
    ``fitted_width`` other than the feature count makes a model that raises when scored."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, fitted_width or len(feature_names)))
    y = (x[:, seed % x.shape[1]] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    width = len(feature_names)
    manifest = {
        "version": version, "created_at": "2026-12-01T00:00:00+00:00",
        "model_kind": "logreg", "feature_names": list(feature_names),
        "feature_schema": schema or feature_schema_digest(),
        "thresholds": {"review": 0.5, "decline": 0.9},
        "metrics": {"logreg": {"average_precision": 0.5 + seed / 100}},
        "explain": {"means": [0.0] * width, "stds": [1.0] * width,
                    "importances": [1.0] * width},
    }
    return write_artifact(root / version, model, manifest)


def probe_rows(rows: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, N_FEATURES))
