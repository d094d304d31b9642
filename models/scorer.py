"""The scorer a worker holds: a verified artifact, its thresholds and its explainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.artifact import Artifact, ArtifactError
from models.decisions import ReasonExplainer, decide


@dataclass
class ScoredBatch:
    scores: np.ndarray
    codes: np.ndarray
    reasons: list[list[str]]


class Scorer:
    def __init__(self, artifact: Artifact, expected_features: Sequence[str]) -> None:
        if artifact.feature_names != list(expected_features):
            raise ArtifactError(
                f"model {artifact.version} expects features {artifact.feature_names}, "
                f"this build computes {list(expected_features)}"
            )
        self.artifact = artifact
        self.version = artifact.version
        self.thresholds = artifact.thresholds
        self._predict = artifact.model.predict_proba
        self._explainer = ReasonExplainer.from_manifest(artifact.feature_names,
                                                        artifact.manifest["explain"])

    def score(self, matrix: np.ndarray) -> ScoredBatch:
        scores = np.clip(self._predict(matrix)[:, 1], 0.0, 1.0)
        codes = decide(scores, self.thresholds)
        return ScoredBatch(scores, codes, self._explainer.reasons(matrix, codes))
