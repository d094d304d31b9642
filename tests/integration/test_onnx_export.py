"""ONNX export: onnxruntime reproduces scikit-learn on real feature rows, for the
HistGradientBoosting champion and the logistic regression; the artifact stays verified."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from fraudstream.features.offline import compute_matrix
from fraudstream.models import onnx_export
from fraudstream.models.artifact import ArtifactError, load_artifact, write_artifact
from fraudstream.models.calibration import Calibration
from fraudstream.models.onnx_export import (
    INPUT_NAME,
    ONNX_FILE,
    TARGET_OPSET,
    OnnxExportError,
    export_onnx,
    export_version,
    sidecar_path,
)
from fraudstream.models.registry import Registry
from fraudstream.models.train import train
from fraudstream.simulator.generator import simulate
from tests.population import TEST_POPULATION, recent


@pytest.fixture(scope="module")
def registry(model_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A copy of the session's registry (its hgb champion) plus a logistic regression."""
    root = tmp_path_factory.mktemp("onnx") / "registry"
    shutil.copytree(model_registry, root)
    train(simulate(TEST_POPULATION), root, kind="logreg", promote=False)
    return Registry(root)


@pytest.fixture(scope="module")
def feature_rows() -> np.ndarray:
    """Every feature row of the training population and of an unseen one."""
    seen = compute_matrix(simulate(TEST_POPULATION))
    unseen = compute_matrix(simulate(recent(20, customers=400, terminals=800, seed=21)))
    return np.vstack([seen, unseen])


def version_of(registry: Registry, kind: str) -> str:
    return next(v for v in registry.versions() if v.endswith(f"-{kind}"))


@pytest.mark.parametrize("kind", ["hgb", "logreg"])
def test_onnxruntime_probabilities_equal_scikit_learn_within_1e_5(
        registry: Registry, feature_rows: np.ndarray, tmp_path: Path, kind: str) -> None:
    version = version_of(registry, kind)
    done = export_version(registry.root, version, tmp_path / f"{kind}.onnx")
    assert done.path == tmp_path / f"{kind}.onnx" and not done.registered
    sidecar = json.loads(sidecar_path(done.path).read_text())
    artifact = load_artifact(registry.version_dir(version))

    # As an edge consumer would: the file, its sidecar, onnxruntime, float32 features.
    session = onnxruntime.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [sidecar["input"]["name"]] == [INPUT_NAME]
    _, proba = session.run(None, {INPUT_NAME: feature_rows.astype(np.float32)})
    expected = artifact.model.predict_proba(feature_rows)[:, 1]
    worst = float(np.max(np.abs(np.asarray(proba)[:, 1] - expected)))
    print(f"{kind}: max |onnxruntime - predict_proba| = {worst:.2e} over "
          f"{len(feature_rows)} rows")
    assert worst <= 1e-5
    assert expected.min() < 0.01 < 0.5 < expected.max(), "rows must span the scores"

    assert sidecar["sha256"] == hashlib.sha256(done.path.read_bytes()).hexdigest() == done.sha256
    assert sidecar["model_version"] == version
    assert sidecar["feature_names"] == artifact.feature_names
    assert sidecar["source_model_sha256"] == artifact.manifest["files"]["model.joblib"]
    model = onnx.load(str(done.path))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["fraudstream.model_version"] == version
    assert json.loads(metadata["fraudstream.feature_names"]) == artifact.feature_names
    assert json.loads(metadata["fraudstream.thresholds"]) == artifact.thresholds
    # The thresholds are on calibrated scores: the knots travel with them.
    calibration = json.loads(metadata["fraudstream.calibration"])
    assert calibration == sidecar["calibration"]
    recorded = Calibration.from_manifest(artifact.manifest.get("calibration"))
    assert calibration["scores"] == recorded.scores.tolist()
    assert calibration["probabilities"] == recorded.probabilities.tolist()
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] == TARGET_OPSET[""], "the pinned opset"
    assert all(v <= TARGET_OPSET.get(d, 0) for d, v in opsets.items()), opsets
    onnx.checker.check_model(model)


def test_an_export_into_the_artifact_is_registered_and_verified(
        model_registry: Path, tmp_path: Path) -> None:
    root = tmp_path / "registry"
    shutil.copytree(model_registry, root)
    registry = Registry(root)
    done = export_version(root, None, None)
    directory = registry.version_dir(registry.champion_version() or "")
    assert done.registered and not done.reused and done.path == directory / ONNX_FILE
    manifest = json.loads((directory / "manifest.json").read_text())
    for name in (ONNX_FILE, ONNX_FILE + ".json"):
        assert manifest["files"][name] == hashlib.sha256((directory / name).read_bytes()
                                                         ).hexdigest()
    assert manifest["onnx"]["sha256"] == done.sha256
    assert load_artifact(directory).manifest["onnx"]["file"] == ONNX_FILE

    again = export_version(root, None, None)
    assert again.reused and again.sha256 == done.sha256

    (directory / ONNX_FILE).write_bytes(b"not the exported model")
    with pytest.raises(ArtifactError, match=r"model\.onnx does not match its sha256"):
        load_artifact(directory)


def test_an_export_that_does_not_reproduce_the_model_is_not_written(
        model_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "TOLERANCE", 0.0)  # float32 is never exact
    with pytest.raises(OnnxExportError, match=r"differs from scikit-learn by .* \(> 0\); "
                                              r"not written"):
        export_version(model_registry, None, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_model_skl2onnx_cannot_convert_is_one_clear_error(tmp_path: Path) -> None:
    directory = write_artifact(tmp_path / "v1", {"not": "a model"}, {
        "version": "v1", "feature_names": ["amount"], "thresholds": {"review": 0.5,
                                                                     "decline": 0.9}})
    with pytest.raises(OnnxExportError, match=r"^model v1 \(dict\) cannot be converted"):
        export_onnx(load_artifact(directory), tmp_path / "v1.onnx")
