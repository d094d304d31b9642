"""models.artifact: a signed sha256 manifest, and nothing unpickled before it is verified."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
from pathlib import Path
from typing import Any

import joblib
import pytest

from fraudstream.models import signing
from fraudstream.models.artifact import (
    FORMAT,
    MANIFEST,
    MODEL_FILE,
    Artifact,
    ArtifactError,
    load_artifact,
    sha256_of,
    write_artifact,
)
from fraudstream.models.signing import SIGNATURE_FILE

MODEL = {"kind": "test-model", "weights": [0.25, -1.5, 3.0]}
MANIFEST_IN = {
    "version": "20180401-000000",
    "feature_names": ["amount", "is_night"],
    "thresholds": {"review": 0.4, "decline": 0.85},
}


def write(directory: Path, extra: dict[str, str] | None = None) -> Path:
    return write_artifact(directory, MODEL, dict(MANIFEST_IN), extra_files=extra)


def read_manifest_json(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST).read_text())


def rewrite_manifest(directory: Path, manifest: dict[str, Any], sign: bool = True) -> None:
    """Replace the manifest; signed with the test key unless ``sign`` is False (what
    someone who can write the registry but has no key can do)."""
    data = json.dumps(manifest).encode()
    (directory / MANIFEST).write_bytes(data)
    if sign:
        (directory / SIGNATURE_FILE).write_bytes(signing.signer().sign(data))


def test_round_trip(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": '{"means": [1, 2]}'})
    artifact = load_artifact(directory)
    assert isinstance(artifact, Artifact)
    assert artifact.model == MODEL
    assert artifact.path == directory
    assert artifact.version == "20180401-000000"
    assert artifact.feature_names == ["amount", "is_night"]
    assert artifact.thresholds == {"review": 0.4, "decline": 0.85}
    assert artifact.manifest["format"] == FORMAT
    assert load_artifact(str(directory)).model == MODEL  # str paths work too


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": "{}", "notes.txt": "hello"})
    files = read_manifest_json(directory)["files"]
    assert sorted(files) == ["explain.json", MODEL_FILE, "notes.txt"]  # never the signature
    for name, digest in files.items():
        assert digest == hashlib.sha256((directory / name).read_bytes()).hexdigest()
    assert files["notes.txt"] == hashlib.sha256(b"hello").hexdigest()
    assert not (directory / (MANIFEST + ".tmp")).exists()


def test_sha256_of(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    assert sha256_of(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_write_refuses_an_existing_directory(tmp_path: Path) -> None:
    write(tmp_path / "v1")
    with pytest.raises(FileExistsError):
        write(tmp_path / "v1")


def test_one_changed_byte_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    model = directory / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256") as caught:
        load_artifact(directory)
    assert MODEL_FILE in str(caught.value)


def test_changed_extra_file_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": '{"a": 1}'})
    (directory / "explain.json").write_text('{"a": 2}')
    with pytest.raises(ArtifactError, match=r"explain\.json does not match its sha256"):
        load_artifact(directory)


def test_missing_listed_file_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": "{}"})
    (directory / "explain.json").unlink()
    with pytest.raises(ArtifactError, match=r"file explain\.json is missing"):
        load_artifact(directory)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    (directory / MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match=f"file {MODEL_FILE} is missing"):
        load_artifact(directory)


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    (directory / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=f"has no {MANIFEST}"):
        load_artifact(directory)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope")


def test_manifest_not_listing_the_model_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": "{}"})
    manifest = read_manifest_json(directory)
    del manifest["files"][MODEL_FILE]
    rewrite_manifest(directory, manifest)
    with pytest.raises(ArtifactError, match=f"does not list {MODEL_FILE}"):
        load_artifact(directory)


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "unreadable"),
    ("[1, 2]", "unknown manifest format"),
    ('{"format": 99}', "unknown manifest format"),
])
def test_unreadable_or_foreign_manifest_is_refused(tmp_path: Path, text: str,
                                                   fragment: str) -> None:
    directory = write(tmp_path / "v1")
    (directory / MANIFEST).write_text(text)
    (directory / SIGNATURE_FILE).write_bytes(signing.signer().sign(text.encode()))
    with pytest.raises(ArtifactError, match=fragment):
        load_artifact(directory)


@pytest.mark.parametrize("key", ["version", "feature_names", "thresholds", "files"])
def test_manifest_lacking_a_key_is_refused(tmp_path: Path, key: str) -> None:
    directory = write(tmp_path / "v1")
    manifest = read_manifest_json(directory)
    del manifest[key]
    rewrite_manifest(directory, manifest)
    with pytest.raises(ArtifactError, match=f"lacks '{key}'"):
        load_artifact(directory)


@pytest.mark.parametrize("name", ["../outside.joblib", "sub/file", ".hidden", "/etc/passwd"])
def test_file_names_outside_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    directory = write(tmp_path / "v1")
    manifest = read_manifest_json(directory)
    manifest["files"][name] = "0" * 64
    rewrite_manifest(directory, manifest)
    with pytest.raises(ArtifactError, match="bad file name"):
        load_artifact(directory)


def test_manifest_files_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    manifest = read_manifest_json(directory)
    manifest["files"] = [MODEL_FILE]
    rewrite_manifest(directory, manifest)
    with pytest.raises(ArtifactError):
        load_artifact(directory)


# --- a tampered pickle is never unpickled ---------------------------------------------


class TouchOnUnpickle:
    """Unpickling this object creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Control: the payload used below does create its marker when loaded."""
    marker = tmp_path / "control-marker"
    joblib.dump(TouchOnUnpickle(marker), tmp_path / "payload.joblib")
    assert not marker.exists()
    joblib.load(tmp_path / "payload.joblib")
    assert marker.exists()


def test_tampered_model_is_never_unpickled(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    marker = tmp_path / "pwned"
    # Replaced after the manifest was written: its hash no longer matches.
    joblib.dump(TouchOnUnpickle(marker), directory / MODEL_FILE)
    assert not marker.exists()
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(directory)
    assert not marker.exists()


def test_tampered_model_with_a_missing_extra_file_is_never_unpickled(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1", extra={"explain.json": "{}"})
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.joblib"
    joblib.dump(TouchOnUnpickle(marker), payload)
    shutil.copyfile(payload, directory / MODEL_FILE)
    (directory / "explain.json").unlink()
    with pytest.raises(ArtifactError):
        load_artifact(directory)
    assert not marker.exists()


def test_unloadable_but_verified_model_is_an_artifact_error(tmp_path: Path) -> None:
    directory = tmp_path / "v1"
    write(directory)
    (directory / MODEL_FILE).write_bytes(b"not a pickle")
    manifest = read_manifest_json(directory)
    manifest["files"][MODEL_FILE] = hashlib.sha256(b"not a pickle").hexdigest()
    rewrite_manifest(directory, manifest)
    artifact = load_artifact(directory)  # verified: the bytes are what was signed
    with pytest.raises(ArtifactError, match="cannot load model"):
        _ = artifact.model
