"""Model artifacts: a directory per version, every file's sha256 in ``manifest.json``.

A joblib file is a pickle, and unpickling runs code: nothing is unpickled before every
file listed in the manifest exists and matches its hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
FORMAT = 1
REQUIRED_FILES = (MODEL_FILE,)


class ArtifactError(ValueError):
    """An artifact is missing, incomplete, tampered with or unreadable."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: dict[str, Any]
    model: Any

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.manifest["thresholds"].items()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_artifact(directory: Path, model: Any, manifest: dict[str, Any],
                   extra_files: dict[str, str] | None = None,
                   build: Callable[[Path], dict[str, Any]] | None = None) -> Path:
    """Write the model, any extra text files, whatever ``build`` adds (it returns manifest
    entries), and the manifest that hashes them all."""
    directory.mkdir(parents=True, exist_ok=False)
    joblib.dump(model, directory / MODEL_FILE)
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text)
    if build is not None:
        manifest = {**manifest, **build(directory)}
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    _write_manifest(directory, {**manifest, "format": FORMAT,
                                "files": {name: sha256_of(directory / name) for name in files}})
    return directory


def register_files(directory: Path, names: list[str], entries: dict[str, Any]) -> None:
    """Add files already written into an existing artifact to its manifest (with their
    sha256) together with ``entries``. The artifact is verified first: a file is never
    registered beside a tampered one."""
    manifest = read_manifest(directory)
    verify(directory, manifest)
    files = {**manifest["files"], **{name: sha256_of(directory / name) for name in names}}
    _write_manifest(directory, {**manifest, **entries, "files": files})


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, directory / MANIFEST)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"model artifact {directory} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"model artifact {directory} has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"model artifact {directory}: unreadable {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"model artifact {directory}: unknown manifest format")
    expected_types = {"version": str, "feature_names": list, "thresholds": dict,
                      "files": dict}
    for key, kind in expected_types.items():
        if key not in manifest:
            raise ArtifactError(f"model artifact {directory}: manifest lacks {key!r}")
        if not isinstance(manifest[key], kind):
            raise ArtifactError(f"model artifact {directory}: manifest {key!r} is not a "
                                f"{kind.__name__}")
    return manifest


def verify(directory: Path, manifest: dict[str, Any]) -> None:
    """Every listed file exists and matches its hash; every required file is listed."""
    files: dict[str, str] = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in files:
            raise ArtifactError(f"model artifact {directory}: manifest does not list {name}")
    for name, expected in files.items():
        if os.sep in name or name.startswith("."):
            raise ArtifactError(f"model artifact {directory}: bad file name {name!r}")
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"model artifact {directory}: file {name} is missing")
        actual = sha256_of(path)
        if actual != expected:
            raise ArtifactError(
                f"model artifact {directory}: {name} does not match its sha256 "
                f"(tampered or corrupt); refusing to load it"
            )


def check_feature_contract(manifest: dict[str, Any], names: Sequence[str],
                           schema_digest: str | None) -> None:
    """Refuse a model whose feature order or feature schema differs from the running set.

    A manifest without ``feature_schema`` predates schemas: its feature order is checked.
    """
    version = manifest.get("version", "?")
    trained = list(manifest.get("feature_names", []))
    if trained != list(names):
        missing = [n for n in names if n not in trained]
        extra = [n for n in trained if n not in names]
        detail = (f"missing {missing}" if missing else "") + \
                 ("; " if missing and extra else "") + (f"unknown {extra}" if extra else "")
        raise ArtifactError(
            f"model {version} was trained on other features than this build computes "
            f"({detail or 'same names in another order'}): retrain it")
    recorded = manifest.get("feature_schema")
    if schema_digest is not None and recorded is not None and recorded != schema_digest:
        raise ArtifactError(
            f"model {version} was trained on feature schema {str(recorded)[:12]}, this "
            f"build computes {schema_digest[:12]} (a feature's meaning changed): retrain it")


def load_artifact(directory: Path | str) -> Artifact:
    directory = Path(directory)
    manifest = read_manifest(directory)
    verify(directory, manifest)
    try:
        model = joblib.load(directory / MODEL_FILE)
    except Exception as exc:
        raise ArtifactError(f"model artifact {directory}: cannot load model: {exc}") from None
    return Artifact(directory, manifest, model)
