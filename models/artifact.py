"""Model artifacts: a directory per version, every file's sha256 in a signed ``manifest.json``.

A joblib file is a pickle and the compiled scorer a shared library: both run code when
loaded. So a reader (1) reads ``manifest.json`` and ``manifest.sig`` and verifies the
signature with a trusted key before it opens anything else, (2) reads every listed file
once into memory, by a plain name inside the directory and never through a symbolic
link, and checks its sha256, and (3) loads the model from those same bytes: a file
swapped on disk after it was hashed is never what gets loaded.

The model is unpickled on first use: a worker that scores with the compiled library
checks it against probabilities recorded in the signed manifest, and never imports
scikit-learn (about 130 MB of its resident memory).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib

from fraudstream.models import signing
from fraudstream.models.signing import SIGNATURE_FILE, KeyRing, SigningError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
FORMAT = 1
REQUIRED_FILES = (MODEL_FILE,)
_NOT_LISTED = (MANIFEST, SIGNATURE_FILE, MANIFEST + ".tmp")


class ArtifactError(ValueError):
    """An artifact is missing, incomplete, tampered with, unsigned or unreadable."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: dict[str, Any]
    trained_model: Any = None  # the model in hand (training, tests); else unpickled on use
    blobs: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    signed_by: str = ""

    @cached_property
    def model(self) -> Any:
        """The scikit-learn model, unpickled from the verified bytes the first time it is
        asked for."""
        if self.trained_model is not None:
            return self.trained_model
        try:
            return joblib.load(io.BytesIO(self.blob(MODEL_FILE)))
        except Exception as exc:
            raise ArtifactError(f"model artifact {self.path}: cannot load model: {exc}",
                                ) from None

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.manifest["thresholds"].items()}

    def blob(self, name: str) -> bytes:
        """The verified bytes of a listed file (read once, when the artifact was loaded)."""
        try:
            return self.blobs[name]
        except KeyError:
            raise ArtifactError(f"model artifact {self.path}: {name!r} is not a verified "
                                f"file of it") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- writing ---------------------------------------------------------------------------


def write_artifact(directory: Path, model: Any, manifest: dict[str, Any],
                   extra_files: dict[str, str] | None = None,
                   build: Callable[[Path], dict[str, Any]] | None = None) -> Path:
    """Write the model, any extra text files, whatever ``build`` adds (it returns manifest
    entries), and the manifest that hashes them all, signed with the process's signing
    key when it has one (``fraudstream models sign`` signs it later otherwise)."""
    directory.mkdir(parents=True, exist_ok=False)
    joblib.dump(model, directory / MODEL_FILE)
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text)
    if build is not None:
        manifest = {**manifest, **build(directory)}
    files = sorted(p.name for p in directory.iterdir()
                   if p.is_file() and p.name not in _NOT_LISTED)
    _write_manifest(directory, {**manifest, "format": FORMAT,
                                "files": {name: sha256_of(directory / name) for name in files}},
                    required=False)
    return directory


def register_files(directory: Path, names: list[str], entries: dict[str, Any]) -> None:
    """Add files already written into an existing artifact to its manifest (with their
    sha256) together with ``entries``, and sign it again. The artifact is verified first:
    a file is never registered beside a tampered one."""
    manifest = verified_manifest(directory)
    files = {**manifest["files"], **{name: sha256_of(directory / name) for name in names}}
    _write_manifest(directory, {**manifest, **entries, "files": files}, required=True)


def sign_artifact(directory: Path, signer: signing.Signer,
                  ring: KeyRing | None = None) -> str:
    """Sign an artifact's manifest with ``signer``; returns the signer's key id.

    Every listed file must match its hash. An artifact that is already signed must verify
    with a trusted key first, so re-signing during a key rotation cannot launder a
    tampered artifact; an unsigned one is signed as it is (the operator vouches for it).
    """
    data, signature = _read_manifest_pair(directory)
    manifest = parse_manifest(directory, data)
    if signature is not None:
        _check_signature(directory, data, signature, ring)
    _read_listed(directory, manifest)
    _write_signature(directory, signer.sign(data))
    return signer.key_id


def _write_manifest(directory: Path, manifest: dict[str, Any], required: bool) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    active = signing.current().signer
    if active is None and required:
        raise ArtifactError(f"model artifact {directory}: no model signing key is "
                            f"configured (FRAUDSTREAM_MODEL_SIGNING_KEY)")
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, directory / MANIFEST)
    if active is None:
        (directory / SIGNATURE_FILE).unlink(missing_ok=True)
        log.warning("model artifact %s is unsigned: no signing key configured; sign it "
                    "with `fraudstream models sign`", directory)
        return
    _write_signature(directory, active.sign(data))


def _write_signature(directory: Path, envelope: bytes) -> None:
    tmp = directory / (SIGNATURE_FILE + ".tmp")
    tmp.write_bytes(envelope)
    os.replace(tmp, directory / SIGNATURE_FILE)


# -- reading ---------------------------------------------------------------------------


def _open_directory(directory: Path) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ArtifactError(f"model artifact {directory} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ArtifactError(f"model artifact {directory} is not a directory (or is a "
                                f"symbolic link): refusing it") from None
        raise ArtifactError(f"model artifact {directory}: {exc.strerror}") from None


def _read_file(directory: Path, dir_fd: int, name: str) -> bytes | None:
    """The bytes of ``name`` inside the directory, None if it does not exist. A symbolic
    link or anything but a regular file is refused."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"model artifact {directory}: {name} is a symbolic link; "
                                f"refusing it") from None
        raise ArtifactError(f"model artifact {directory}: cannot read {name}: "
                            f"{exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ArtifactError(f"model artifact {directory}: {name} is not a regular file")
        return handle.read()


def _read_manifest_pair(directory: Path) -> tuple[bytes, bytes | None]:
    dir_fd = _open_directory(directory)
    try:
        data = _read_file(directory, dir_fd, MANIFEST)
        if data is None:
            raise ArtifactError(f"model artifact {directory} has no {MANIFEST}")
        return data, _read_file(directory, dir_fd, SIGNATURE_FILE)
    finally:
        os.close(dir_fd)


def _check_signature(directory: Path, data: bytes, signature: bytes | None,
                     ring: KeyRing | None) -> str:
    try:
        ring = ring or signing.trusted()
    except SigningError as exc:
        raise ArtifactError(str(exc)) from None
    try:
        return ring.verify(data, signature)
    except SigningError as exc:
        raise ArtifactError(f"model artifact {directory}: manifest {exc}; refusing "
                            f"it") from None


def parse_manifest(directory: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
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
    _check_names(directory, manifest)
    return manifest


def _check_names(directory: Path, manifest: dict[str, Any]) -> None:
    """Every listed name is a plain file name inside the directory, and every file the
    scorer opens (the model, the compiled library) is listed."""
    files: dict[str, Any] = manifest["files"]
    for name in files:
        if (not isinstance(name, str) or not name or "/" in name or os.sep in name
                or "\0" in name or name.startswith(".") or name in _NOT_LISTED):
            raise ArtifactError(f"model artifact {directory}: bad file name {name!r}")
    for name in REQUIRED_FILES:
        if name not in files:
            raise ArtifactError(f"model artifact {directory}: manifest does not list {name}")
    compiled = manifest.get("compiled")
    if compiled and compiled not in files:
        raise ArtifactError(f"model artifact {directory}: compiled library {compiled!r} is "
                            f"not a file listed in the manifest; refusing it")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, parsed but not verified: for listings, never for loading."""
    data, _ = _read_manifest_pair(directory)
    return parse_manifest(directory, data)


def _read_listed(directory: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every listed file, read once, each matching its sha256."""
    blobs: dict[str, bytes] = {}
    dir_fd = _open_directory(directory)
    try:
        for name, expected in manifest["files"].items():
            data = _read_file(directory, dir_fd, name)
            if data is None:
                raise ArtifactError(f"model artifact {directory}: file {name} is missing")
            if hashlib.sha256(data).hexdigest() != expected:
                raise ArtifactError(
                    f"model artifact {directory}: {name} does not match its sha256 "
                    f"(tampered or corrupt); refusing to load it")
            blobs[name] = data
    finally:
        os.close(dir_fd)
    return blobs


@dataclass(frozen=True)
class Verified:
    manifest: dict[str, Any]
    blobs: dict[str, bytes]
    signed_by: str


def verify_artifact(directory: Path, ring: KeyRing | None = None) -> Verified:
    """The signature first (with ``ring``, or the process's trusted keys), then every
    listed file: the manifest and the bytes of every file, all checked."""
    data, signature = _read_manifest_pair(directory)
    signed_by = _check_signature(directory, data, signature, ring)
    manifest = parse_manifest(directory, data)
    return Verified(manifest, _read_listed(directory, manifest), signed_by)


def verified_manifest(directory: Path, ring: KeyRing | None = None) -> dict[str, Any]:
    return verify_artifact(directory, ring).manifest


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


def load_artifact(directory: Path | str, ring: KeyRing | None = None) -> Artifact:
    """The verified artifact; its model is unpickled from the verified bytes on first use
    (``Artifact.model``)."""
    directory = Path(directory)
    verified = verify_artifact(directory, ring)
    return Artifact(directory, verified.manifest, None, verified.blobs, verified.signed_by)
