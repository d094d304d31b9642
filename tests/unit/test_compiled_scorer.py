"""models.compiled / models.scorer: the compiled library scores exactly like the model."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.models.artifact import ArtifactError, load_artifact, write_artifact
from fraudstream.models.calibration import Calibration
from fraudstream.models.compiled import CompiledScorer, split_thresholds
from fraudstream.models.evaluation import default_plan, time_split
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer
from fraudstream.models.train import train
from fraudstream.simulator.generator import SimulationConfig, simulate
from tests import signing_keys
from tests.tools import tool_missing

if shutil.which("gcc") is None:
    tool_missing("no C compiler", "Debian package gcc", module_level=True)

CONFIG = SimulationConfig(customers=400, terminals=800, days=40, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("registry")
    frame = simulate(CONFIG)
    train(frame, root)
    return root, frame


def test_train_ships_a_compiled_library_listed_in_the_manifest(trained) -> None:
    root, _ = trained
    artifact = Registry(root).load_champion()
    assert artifact.manifest["compiled"] == "scorer.so"
    assert "scorer.so" in artifact.manifest["files"]
    assert Scorer(artifact, FEATURE_NAMES).backend == "compiled"


def test_compiled_probabilities_match_predict_proba_on_the_whole_test_set(trained) -> None:
    root, frame = trained
    artifact = Registry(root).load_champion()
    matrix = compute_matrix(frame)
    _, test = time_split(frame, default_plan(CONFIG.days))
    scorer = Scorer(artifact, FEATURE_NAMES)
    # The model's probabilities through the manifest's calibration: what a worker scores.
    calibration = Calibration.from_manifest(artifact.manifest["calibration"])
    expected = calibration.apply(artifact.model.predict_proba(matrix[test])[:, 1])
    actual = scorer.score(matrix[test]).scores
    assert test.sum() > 1000
    assert np.max(np.abs(actual - expected)) <= 1e-6


def test_values_that_look_like_the_missing_marker_are_scored_correctly(trained) -> None:
    """TL2cgen takes a double whose low 32 bits are all ones for a missing value."""
    root, frame = trained
    artifact = Registry(root).load_champion()
    matrix = np.ascontiguousarray(compute_matrix(frame)[:4000])
    matrix.view(np.uint64)[:, :] |= np.uint64(0xFFFFFFFF)  # every value aliased
    guarded = CompiledScorer(artifact.blob("scorer.so"),
                             split_thresholds(artifact.model, len(FEATURE_NAMES)))
    expected = artifact.model.predict_proba(matrix)[:, 1]
    assert np.max(np.abs(guarded.predict(matrix) - expected)) <= 1e-6
    # Without the guard the library does go wrong on such rows (TL2cgen's own predictor,
    # which reads them as missing): the test has teeth.
    import tl2cgen

    plain = tl2cgen.Predictor(str(artifact.path / "scorer.so"), nthread=1, verbose=False)
    unguarded = plain.predict(tl2cgen.DMatrix(matrix, dtype="float64")).reshape(
        len(matrix), -1)[:, -1]
    assert np.max(np.abs(unguarded - expected)) > 1e-6


def test_the_row_loop_gives_exactly_what_tl2cgens_own_predictor_gives(trained) -> None:
    import tl2cgen

    root, frame = trained
    artifact = Registry(root).load_champion()
    matrix = np.ascontiguousarray(compute_matrix(frame)[:5000])
    library = artifact.path / "scorer.so"
    reference = tl2cgen.Predictor(str(library), nthread=1, verbose=False).predict(
        tl2cgen.DMatrix(matrix, dtype="float64")).reshape(len(matrix), -1)[:, -1]
    compiled = CompiledScorer(artifact.blob("scorer.so"))
    assert np.array_equal(compiled.predict(matrix), reference)
    assert np.array_equal(compiled.predict(matrix[:1]), reference[:1])  # a batch of one


def test_a_worker_scores_without_importing_scikit_learn_or_tl2cgen(trained) -> None:
    """The compiled library is checked against probabilities recorded in the signed
    manifest: the model is never unpickled (scikit-learn is some 130 MB of memory)."""
    root, _ = trained
    script = ("import sys\n"
              "from fraudstream import model_trust\n"
              "from fraudstream.settings import Settings\n"
              "model_trust.configure(Settings.from_env())\n"
              "from fraudstream.models.registry import Registry\n"
              "from fraudstream.models.scorer import load_scorer\n"
              f"scorer = load_scorer(Registry({str(root)!r}).load_champion())\n"
              "print(scorer.backend, sorted(m for m in ('sklearn', 'tl2cgen', 'treelite')"
              " if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **signing_keys.pair().environ()})
    assert done.stdout.split("\n")[0] == "compiled []", done.stdout + done.stderr


def test_a_library_that_disagrees_with_the_recorded_probabilities_is_refused(
        trained, tmp_path: Path) -> None:
    root, _ = trained
    good = Registry(root).load_champion()
    check = good.manifest["compiled_check"]
    shifted = {**check, "probe_probabilities": [p + 1e-3 for p in check["probe_probabilities"]]}
    library = good.blob("scorer.so")

    def same_library(directory: Path) -> dict[str, object]:
        (directory / "scorer.so").write_bytes(library)
        return {"compiled": "scorer.so", "compiled_check": shifted}

    kept = {k: v for k, v in good.manifest.items()
            if k not in ("files", "compiled", "compiled_check", "format")}
    write_artifact(tmp_path / "shifted", good.model, kept, build=same_library)
    scorer = Scorer(load_artifact(tmp_path / "shifted"), FEATURE_NAMES)
    assert scorer.backend == "sklearn"
    assert "differs from the model" in scorer.fallback


def test_an_artifact_without_a_recorded_check_is_checked_against_its_model(
        trained, tmp_path: Path) -> None:
    """Artifacts trained before the check was recorded still load their library."""
    root, frame = trained
    good = Registry(root).load_champion()
    library = good.blob("scorer.so")

    def library_only(directory: Path) -> dict[str, object]:
        (directory / "scorer.so").write_bytes(library)
        return {"compiled": "scorer.so"}

    kept = {k: v for k, v in good.manifest.items()
            if k not in ("files", "compiled", "compiled_check", "format")}
    write_artifact(tmp_path / "older", good.model, kept, build=library_only)
    artifact = load_artifact(tmp_path / "older")
    assert "compiled_check" not in artifact.manifest
    scorer = Scorer(artifact, FEATURE_NAMES)
    assert scorer.backend == "compiled"
    matrix = compute_matrix(frame)[:500]
    assert np.max(np.abs(scorer.score(matrix).scores
                         - scorer.calibration.apply(good.model.predict_proba(matrix)[:, 1])
                         )) <= 1e-6


def test_a_library_that_cannot_load_falls_back_to_scikit_learn_and_says_so(
        trained, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, frame = trained
    good = Registry(root).load_champion()
    broken = tmp_path / "broken"

    def bogus_library(directory: Path) -> dict[str, str]:
        (directory / "scorer.so").write_bytes(b"\x7fELF built for another machine")
        return {"compiled": "scorer.so"}

    write_artifact(broken, good.model, {k: v for k, v in good.manifest.items()
                                        if k not in ("files", "compiled", "format")},
                   build=bogus_library)
    artifact = load_artifact(broken)  # hashes match: the file is what training wrote
    with caplog.at_level(logging.WARNING, logger="fraudstream.models"):
        scorer = Scorer(artifact, FEATURE_NAMES)
    assert scorer.backend == "sklearn"
    assert "cannot load" in scorer.fallback
    assert any("compiled scorer unusable" in r.getMessage() for r in caplog.records)
    matrix = compute_matrix(frame)[:500]
    assert np.array_equal(scorer.score(matrix).scores, np.clip(
        scorer.calibration.apply(good.model.predict_proba(matrix)[:, 1]), 0, 1))


def test_a_calibration_that_widens_a_small_difference_is_refused(
        trained, tmp_path: Path) -> None:
    """A library within 1e-6 of the model raw, but not once a steep calibration (slope 10
    below 0.05) maps both: the calibrated scores are what a decision uses."""
    root, _ = trained
    good = Registry(root).load_champion()
    check = good.manifest["compiled_check"]
    assert min(check["probe_probabilities"]) < 0.05
    nudged = {**check, "probe_probabilities": [p + 5e-7 for p in check["probe_probabilities"]]}
    library = good.blob("scorer.so")

    def same_library(directory: Path) -> dict[str, object]:
        (directory / "scorer.so").write_bytes(library)
        return {"compiled": "scorer.so", "compiled_check": nudged}

    kept = {k: v for k, v in good.manifest.items()
            if k not in ("files", "compiled", "compiled_check", "format")}
    for name, scores, probabilities, backend in (
            ("gentle", [0.0, 1.0], [0.0, 1.0], "compiled"),
            ("steep", [0.0, 0.05, 1.0], [0.0, 0.5, 1.0], "sklearn")):
        kept["calibration"] = {**good.manifest["calibration"], "scores": scores,
                               "probabilities": probabilities}
        write_artifact(tmp_path / name, good.model, kept, build=same_library)
        scorer = Scorer(load_artifact(tmp_path / name), FEATURE_NAMES)
        assert scorer.backend == backend, scorer.fallback
    assert "calibrated, the compiled scorer differs" in scorer.fallback


def test_a_calibration_that_is_not_an_increasing_map_is_refused(
        trained, tmp_path: Path) -> None:
    root, _ = trained
    good = Registry(root).load_champion()
    kept = {k: v for k, v in good.manifest.items()
            if k not in ("files", "compiled", "compiled_check", "format")}
    kept["calibration"] = {**good.manifest["calibration"], "scores": [0.0, 0.5, 0.4, 1.0],
                           "probabilities": [0.0, 0.1, 0.2, 1.0]}
    write_artifact(tmp_path / "bent", good.model, kept)
    with pytest.raises(ArtifactError, match="unusable calibration"):
        Scorer(load_artifact(tmp_path / "bent"), FEATURE_NAMES)


def test_a_logistic_model_is_not_compiled(tmp_path: Path) -> None:
    frame = simulate(SimulationConfig(customers=200, terminals=400, days=30, seed=1))
    result = train(frame, tmp_path, kind="logreg")
    artifact = load_artifact(result.path)
    assert artifact.manifest["compiled"] is None
    assert Scorer(artifact, FEATURE_NAMES).backend == "sklearn"
