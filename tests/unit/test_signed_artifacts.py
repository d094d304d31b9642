"""Signed artifacts: a manifest nobody signed, a file outside the artifact, a symbolic link
or a file swapped after it was hashed never gets loaded."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from pathlib import Path
from typing import Any

import joblib
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fraudstream import model_commands, model_trust
from fraudstream.models import artifact as artifact_module
from fraudstream.models import signing
from fraudstream.models.artifact import (
    MANIFEST,
    MODEL_FILE,
    ArtifactError,
    load_artifact,
    sign_artifact,
    write_artifact,
)
from fraudstream.models.compiled import private_copy
from fraudstream.models.signing import SIGNATURE_FILE, KeyRing, Signer
from fraudstream.settings import Settings

MODEL = {"kind": "test-model", "weights": [0.25, -1.5, 3.0]}
MANIFEST_IN = {"version": "v1", "feature_names": ["amount"],
               "thresholds": {"review": 0.4, "decline": 0.85}}


class TouchOnUnpickle:
    """Unpickling this object creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write(directory: Path, **extra: Any) -> Path:
    return write_artifact(directory, MODEL, {**MANIFEST_IN, **extra})


def manifest_of(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST).read_text())


def rewrite(directory: Path, manifest: dict[str, Any]) -> None:
    """What a registry writer without the key can do: rewrite the manifest and hashes."""
    (directory / MANIFEST).write_text(json.dumps(manifest))


def replace_model_and_hash(directory: Path, marker: Path) -> None:
    joblib.dump(TouchOnUnpickle(marker), directory / MODEL_FILE)
    manifest = manifest_of(directory)
    manifest["files"][MODEL_FILE] = hashlib.sha256(
        (directory / MODEL_FILE).read_bytes()).hexdigest()
    rewrite(directory, manifest)


def test_write_signs_the_manifest_with_the_process_key(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    envelope = json.loads((directory / SIGNATURE_FILE).read_bytes())
    assert envelope["key_id"] == signing.signer().key_id
    assert load_artifact(directory).signed_by == signing.signer().key_id


def test_a_manifest_rewritten_with_matching_hashes_but_no_valid_signature_is_refused(
        tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    marker = tmp_path / "pwned"
    replace_model_and_hash(directory, marker)  # every hash matches again
    with pytest.raises(ArtifactError, match="signature that does not verify"):
        load_artifact(directory)
    assert not marker.exists()


def test_an_unsigned_manifest_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    (directory / SIGNATURE_FILE).unlink()
    with pytest.raises(ArtifactError, match="is not signed"):
        load_artifact(directory)


def test_a_manifest_signed_by_an_untrusted_key_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    marker = tmp_path / "pwned"
    replace_model_and_hash(directory, marker)
    intruder = Signer(Ed25519PrivateKey.generate())
    (directory / SIGNATURE_FILE).write_bytes(intruder.sign((directory / MANIFEST).read_bytes()))
    with pytest.raises(ArtifactError, match="not trusted"):
        load_artifact(directory)
    assert not marker.exists()


def test_a_garbled_signature_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    (directory / SIGNATURE_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable signature"):
        load_artifact(directory)


def test_rotation_trusts_several_keys_and_re_signing_needs_a_valid_signature(
        tmp_path: Path) -> None:
    old_signer = signing.signer()
    directory = write(tmp_path / "v1")
    new = Signer(Ed25519PrivateKey.generate())
    both = KeyRing.of([old_signer.private.public_key(), new.private.public_key()])
    only_new = KeyRing.of([new.private.public_key()])
    assert sign_artifact(directory, new, both) == new.key_id  # re-signed during rotation
    assert load_artifact(directory, only_new).model == MODEL  # the old key can go
    assert load_artifact(directory, both).signed_by == new.key_id
    replace_model_and_hash(directory, tmp_path / "pwned")
    with pytest.raises(ArtifactError, match="does not verify"):
        sign_artifact(directory, new, both)  # a tampered artifact is never laundered


def test_no_configured_key_refuses_to_load(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    previous = signing.current()
    try:
        model_trust.configure(Settings())
        with pytest.raises(ArtifactError, match="FRAUDSTREAM_MODEL_PUBLIC_KEYS"):
            load_artifact(directory)
    finally:
        signing.configure(previous)


def test_dev_keys_make_a_pair_once_and_say_so(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    previous = signing.current()
    settings = Settings(dev_keys=True, dev_keys_dir=str(tmp_path / "dev"))
    try:
        with caplog.at_level("WARNING", logger="fraudstream.models"):
            first = model_trust.configure(settings)
        assert any("development keys" in r.getMessage() for r in caplog.records)
        assert os.stat(tmp_path / "dev" / model_trust.DEV_PRIVATE).st_mode & 0o077 == 0
        directory = write(tmp_path / "v1")
        again = model_trust.configure(settings)  # another process: the same pair
        assert first.signer is not None and again.signer is not None
        assert again.signer.key_id == first.signer.key_id
        assert load_artifact(directory).model == MODEL
    finally:
        signing.configure(previous)


# -- every file the scorer opens is inside the artifact --------------------------------


@pytest.mark.parametrize("compiled", ["/usr/lib/x86_64-linux-gnu/libc.so.6", "../scorer.so",
                                      "scorer.so"])
def test_a_compiled_library_not_listed_inside_the_artifact_is_refused(
        tmp_path: Path, compiled: str) -> None:
    directory = write(tmp_path / "v1", compiled=compiled)  # signed, but names a foreign file
    with pytest.raises(ArtifactError, match=r"compiled library .* is not a file listed"):
        load_artifact(directory)


def test_a_symbolic_link_in_the_artifact_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    elsewhere = tmp_path / "elsewhere.joblib"
    os.replace(directory / MODEL_FILE, elsewhere)
    (directory / MODEL_FILE).symlink_to(elsewhere)  # same bytes, same hash
    with pytest.raises(ArtifactError, match="symbolic link"):
        load_artifact(directory)


def test_an_artifact_directory_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path / "v1")
    (tmp_path / "v2").symlink_to(directory)
    with pytest.raises(ArtifactError, match="symbolic link"):
        load_artifact(tmp_path / "v2")


# -- no window between hashing and loading ---------------------------------------------


def test_a_model_swapped_after_hashing_is_not_what_gets_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = write(tmp_path / "v1")
    marker = tmp_path / "pwned"
    real_load = joblib.load

    def swap_then_load(source: Any, *args: Any, **kwargs: Any) -> Any:
        joblib.dump(TouchOnUnpickle(marker), directory / MODEL_FILE)  # the race, won
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(artifact_module.joblib, "load", swap_then_load)
    assert load_artifact(directory).model == MODEL
    assert not marker.exists()


def test_the_compiled_library_is_loaded_from_a_private_checked_copy(tmp_path: Path) -> None:
    library = b"\x7fELF not really a library"
    with private_copy(library) as path:
        assert path.read_bytes() == library
        assert os.stat(path.parent).st_mode & 0o077 == 0  # nobody else can swap it
        assert not str(path).startswith(str(tmp_path))
    assert not path.parent.exists()


def test_models_keygen_and_sign_sign_an_unsigned_version(tmp_path: Path) -> None:
    private = tmp_path / "keys" / "release.pem"
    assert model_commands.keygen(private) == 0
    assert os.stat(private).st_mode & 0o077 == 0
    directory = write(tmp_path / "registry" / "v1")
    (directory / SIGNATURE_FILE).unlink()  # trained where no key was configured
    assert model_commands.sign(tmp_path / "registry", "v1", private) == 0
    ring = signing.load_public_keys([tmp_path / "keys" / "release.pub.pem"])
    assert load_artifact(directory, ring).model == MODEL


def test_a_directory_of_public_keys_trusts_each_one(tmp_path: Path) -> None:
    keys = tmp_path / "model-keys"
    old = signing.generate(tmp_path / "old.pem", keys / "old.pem")
    new = signing.generate(tmp_path / "new.pem", keys / "new.pem")
    trust = model_trust.trust_from_settings(Settings(model_public_keys=str(keys)))
    assert trust.ring is not None and set(trust.ring.keys) == {old.key_id, new.key_id}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model_trust.trust_from_settings(Settings(model_public_keys=str(empty))).ring is None
