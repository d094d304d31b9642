"""The scorer a worker holds: a verified artifact, its calibration, thresholds and
explainer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models.artifact import Artifact, ArtifactError, check_feature_contract
from fraudstream.models.calibration import Calibration, CalibrationError
from fraudstream.models.compiled import (
    TOLERANCE,
    CompiledScorer,
    CompiledScorerError,
    probe_matrix,
    split_thresholds,
)
from fraudstream.models.decision_kernel import BatchDecisions
from fraudstream.models.decisions import ReasonExplainer

log = logging.getLogger(__name__)
Probability = Callable[[np.ndarray], np.ndarray]


@dataclass
class ScoredBatch:
    scores: np.ndarray
    codes: np.ndarray
    reasons: list[list[str]]


class Scorer:
    """Scores with the compiled library when the artifact has one that loads and agrees
    with the model, calibration applied; with scikit-learn otherwise (``backend`` and
    ``fallback`` say which and why). Scores are the model's probabilities mapped by the
    manifest's calibration (the identity for a model trained without one), and the
    thresholds were chosen on calibrated validation scores."""

    def __init__(self, artifact: Artifact, expected_features: Sequence[str],
                 expected_schema: str | None = None) -> None:
        check_feature_contract(artifact.manifest, expected_features, expected_schema)
        self.artifact = artifact
        self.version = artifact.version
        self.thresholds = artifact.thresholds
        try:
            self.calibration = Calibration.from_manifest(artifact.manifest.get("calibration"))
        except (CalibrationError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"model {artifact.version} has an unusable calibration: "
                                f"{exc}") from None
        explain = artifact.manifest["explain"]
        self._decisions = BatchDecisions(
            self.thresholds, ReasonExplainer.from_manifest(artifact.feature_names, explain),
            self.calibration)
        self.backend, self.fallback, self._probability = _choose_backend(
            artifact, explain, self.calibration)

    def score(self, matrix: np.ndarray) -> ScoredBatch:
        """The compiled tree once for the whole batch, then thresholds and reasons in one
        compiled pass."""
        return ScoredBatch(*self._decisions.apply(self._probability(matrix), matrix))


def load_scorer(artifact: Artifact) -> Scorer:
    """A scorer for the running feature set, warmed up on the training means: first-call
    costs (allocations, the compiled library) are paid before it scores a real batch, and
    a model that cannot score at all is refused here (it raises)."""
    scorer = Scorer(artifact, FEATURE_NAMES, feature_schema_digest())
    scorer.score(np.asarray(artifact.manifest["explain"]["means"], dtype=np.float64)[None, :])
    return scorer


def _choose_backend(artifact: Artifact, explain: Mapping[str, Any],
                    calibration: Calibration) -> tuple[str, str, Probability]:
    def sklearn(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(artifact.model.predict_proba(matrix)[:, 1])

    library = artifact.manifest.get("compiled")
    if not library:
        return "sklearn", "", sklearn
    try:
        probe = probe_matrix(explain["means"], explain["stds"])
        check = artifact.manifest.get("compiled_check")
        if check:  # recorded at training and signed with the manifest: no scikit-learn
            thresholds = [np.asarray(t, dtype=np.float64) for t in check["split_thresholds"]]
            expected = np.asarray(check["probe_probabilities"], dtype=np.float64)
        else:  # an artifact trained before the check was recorded
            thresholds = split_thresholds(artifact.model, len(artifact.feature_names))
            expected = sklearn(probe)
        compiled = CompiledScorer(artifact.blob(library), thresholds)
        compiled.check(probe, expected)
        check_calibrated(compiled.predict(probe), expected, calibration)
    except CompiledScorerError as exc:
        log.warning("compiled scorer unusable, scoring with scikit-learn: %s", exc,
                    extra={"model_version": artifact.version})
        return "sklearn", str(exc), sklearn
    return "compiled", "", compiled.predict


def check_calibrated(actual: np.ndarray, expected: np.ndarray,
                     calibration: Calibration) -> None:
    """Refuse a compiled scorer whose calibrated scores are not the model's calibrated
    probabilities within the tolerance (a steep stretch of the map could widen a raw
    difference)."""
    worst = (float(np.max(np.abs(calibration.apply(actual) - calibration.apply(expected))))
             if expected.size else 0.0)
    if not worst <= TOLERANCE:
        raise CompiledScorerError(f"calibrated, the compiled scorer differs from the model "
                                  f"by {worst:.2e} (> {TOLERANCE:g})")
