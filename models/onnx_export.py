"""ONNX export for edge use: a model version as an ONNX graph, checked by onnxruntime.

skl2onnx converts the fitted model (HistGradientBoosting or the logistic pipeline) at a
pinned opset that onnxruntime runs. The graph takes ``features``: float32, one row per
transaction, columns in the manifest's feature order; it returns ``label`` and
``probabilities`` (column 1 is the model's fraud probability). The model version, feature
order, calibration, thresholds and the source model's sha256 are embedded as metadata: the
thresholds apply to calibrated scores, ``np.interp(probability, scores, probabilities)``
with the calibration's knots, as a worker scores. A JSON sidecar
(``<file>.json``) adds the ONNX file's own sha256. The export is refused unless
onnxruntime reproduces scikit-learn's probabilities within 1e-5 on a probe matrix.
Exported into the artifact, both files are listed with their hashes in its manifest.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.models.artifact import Artifact, register_files, sha256_of
from fraudstream.models.calibration import Calibration
from fraudstream.models.compiled import probe_matrix
from fraudstream.models.registry import Registry

# Opsets the export targets, pinned: onnxruntime 1.32 runs them, skl2onnx 1.20 is tested
# up to opset 22.
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
INPUT_NAME = "features"
ONNX_FILE = "model.onnx"
TOLERANCE = 1e-5
MANIFEST_KEY = "onnx"


class OnnxExportError(ValueError):
    """The model cannot be exported, or its export does not reproduce it."""


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    sidecar: Path
    version: str
    sha256: str
    max_difference: float
    registered: bool  # listed in the artifact's manifest
    reused: bool = False  # already exported: nothing written


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def convert(artifact: Artifact) -> Any:
    """The artifact's model as an ``onnx.ModelProto`` with fraudstream metadata."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = artifact.model
    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    try:
        with warnings.catch_warnings():
            # skl2onnx 1.20 hands protobuf booleans for ints: protobuf 6 warns, 7 fails
            # (hence the pin below 7).
            warnings.filterwarnings("ignore", "Field onnx.AttributeProto", DeprecationWarning)
            proto = to_onnx(model, initial_types=[(INPUT_NAME, FloatTensorType(
                [None, len(artifact.feature_names)]))], target_opset=TARGET_OPSET,
                options={id(classifier): {"zipmap": False}})
    except Exception as exc:  # skl2onnx raises many kinds for unsupported models
        raise OnnxExportError(f"model {artifact.version} ({type(model).__name__}) cannot be "
                              f"converted to ONNX: {exc}") from None
    used = {entry.domain: entry.version for entry in proto.opset_import}
    for domain, version in used.items():
        if version > TARGET_OPSET.get(domain, 0):
            raise OnnxExportError(f"the ONNX graph needs opset {domain or 'ai.onnx'} "
                                  f"{version}, above the pinned {TARGET_OPSET}")
    proto.producer_name = "fraudstream"
    proto.doc_string = (f"fraudstream model {artifact.version}: input {INPUT_NAME!r} float32 "
                        f"[n, {len(artifact.feature_names)}]; fraud probability is "
                        f"probabilities[:, 1]")
    for key, value in _metadata(artifact).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def _metadata(artifact: Artifact) -> dict[str, str]:
    return {
        "fraudstream.model_version": artifact.version,
        "fraudstream.model_kind": str(artifact.manifest.get("model_kind", "")),
        "fraudstream.feature_names": json.dumps(artifact.feature_names),
        "fraudstream.calibration": json.dumps(_calibration(artifact), sort_keys=True),
        "fraudstream.thresholds": json.dumps(artifact.thresholds, sort_keys=True),
        "fraudstream.model_sha256": str(artifact.manifest["files"].get("model.joblib", "")),
    }


def _calibration(artifact: Artifact) -> dict[str, Any]:
    """The calibration knots the thresholds assume (the identity for a model without)."""
    calibration = Calibration.from_manifest(artifact.manifest.get("calibration"))
    return {"method": calibration.method, "scores": calibration.scores.tolist(),
            "probabilities": calibration.probabilities.tolist(),
            "apply": "np.interp(probability, scores, probabilities), then the thresholds"}


def probabilities(session: Any, matrix: np.ndarray) -> np.ndarray:
    """Fraud probabilities from an onnxruntime session of an exported model."""
    label, proba = session.run(None, {INPUT_NAME: np.asarray(matrix, dtype=np.float32)})
    del label
    return np.asarray(proba, dtype=np.float64)[:, 1]


def session_of(model_bytes: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model_bytes, options,
                                        providers=["CPUExecutionProvider"])


def max_difference(artifact: Artifact, model_bytes: bytes, matrix: np.ndarray) -> float:
    """Largest |onnxruntime - scikit-learn| fraud probability over ``matrix``'s rows."""
    expected = artifact.model.predict_proba(matrix)[:, 1]
    actual = probabilities(session_of(model_bytes), matrix)
    return float(np.max(np.abs(actual - expected))) if len(matrix) else 0.0


def export_onnx(artifact: Artifact, output: Path | None = None) -> OnnxExport:
    """Write ``artifact``'s model as ONNX to ``output`` (with its sidecar), or into the
    artifact itself (registered in its manifest) when no output is given."""
    if output is not None and output.suffix.lower() != ".onnx":
        raise OnnxExportError(f"output {output} must be a .onnx file")
    existing = artifact.manifest.get(MANIFEST_KEY)
    if output is None and isinstance(existing, dict):
        # load_artifact verified every listed file, the ONNX export too.
        return OnnxExport(artifact.path / ONNX_FILE, sidecar_path(artifact.path / ONNX_FILE),
                          artifact.version, str(existing["sha256"]),
                          float(existing["max_difference"]), registered=True, reused=True)
    proto = convert(artifact)
    model_bytes = proto.SerializeToString()
    explain = artifact.manifest["explain"]
    probe = probe_matrix(explain["means"], explain["stds"])
    try:
        difference = max_difference(artifact, model_bytes, probe)
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime cannot run the export of {artifact.version}: "
                              f"{exc}") from None
    if not difference <= TOLERANCE:
        raise OnnxExportError(f"the ONNX export of {artifact.version} differs from "
                              f"scikit-learn by {difference:.2e} (> {TOLERANCE:g}); not written")
    path = output if output is not None else artifact.path / ONNX_FILE
    sha256 = _write(path, model_bytes)
    details = _sidecar(artifact, proto, sha256, difference, len(probe))
    _write(sidecar_path(path), (json.dumps(details, indent=2, sort_keys=True) + "\n").encode())
    if output is None:
        register_files(artifact.path, [ONNX_FILE, sidecar_path(path).name], {MANIFEST_KEY: {
            "file": ONNX_FILE, "sha256": sha256, "opset": details["opset"],
            "max_difference": difference}})
    return OnnxExport(path, sidecar_path(path), artifact.version, sha256, difference,
                      registered=output is None)


def _sidecar(artifact: Artifact, proto: Any, sha256: str, difference: float,
             probe_rows: int) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import skl2onnx

    return {
        "model_version": artifact.version,
        "model_kind": artifact.manifest.get("model_kind"),
        "feature_names": artifact.feature_names,
        "calibration": _calibration(artifact),
        "thresholds": artifact.thresholds,
        "sha256": sha256,
        "source_model_sha256": artifact.manifest["files"].get("model.joblib"),
        "input": {"name": INPUT_NAME, "type": "float32",
                  "shape": [None, len(artifact.feature_names)]},
        "outputs": {"label": "predicted class (0 or 1)",
                    "probabilities": "float32 [n, 2]; column 1 is the fraud probability"},
        "opset": {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import},
        "max_difference": difference,
        "probe_rows": probe_rows,
        "libraries": {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                      "skl2onnx": skl2onnx.__version__},
        "exported_at": datetime.now(UTC).isoformat(),
    }


def _write(path: Path, data: bytes) -> str:
    """Write ``data`` atomically; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OnnxExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return sha256_of(path)


def export_version(registry_root: Path, version: str | None,
                   output: Path | None) -> OnnxExport:
    """Export the champion (or ``version``) of the registry at ``registry_root``."""
    return export_onnx(Registry(registry_root).load_version(version), output)
