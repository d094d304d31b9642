"""Model registry: versions side by side in one directory, a champion and a challenger
pointer, and the history of every change.

The directory is the shared storage every worker reads (a volume, an NFS or object-store
mount): a version is a write-once artifact directory, and the pointers are small files
replaced atomically, so a reader sees the old pointer or the new one, never half of one.
Changes take a lock on the directory and append a line to ``history.jsonl`` (who, from
which host, and which key signed the version). Only a version whose signature verifies
with a trusted key can be promoted, shadowed or loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudstream.models.artifact import (
    Artifact,
    ArtifactError,
    check_feature_contract,
    load_artifact,
    read_manifest,
    verify_artifact,
)
from fraudstream.models.signing import KeyRing

CHAMPION_FILE = "CHAMPION"
CHALLENGER_FILE = "CHALLENGER"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class VersionSummary:
    version: str
    created_at: str
    model_kind: str
    average_precision: float | None
    role: str  # "champion", "challenger" or ""


class Registry:
    def __init__(self, root: Path | str, ring: KeyRing | None = None) -> None:
        """``ring``: the public keys signatures must verify with (default: the keys this
        process trusts, ``models.signing.configure``)."""
        self.root = Path(root)
        self._ring = ring

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ArtifactError(f"{version!r} is not a model version name")
        return self.root / version

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and (p / "manifest.json").is_file())

    def champion_version(self) -> str | None:
        return self._read_pointer(CHAMPION_FILE)

    def challenger_version(self) -> str | None:
        return self._read_pointer(CHALLENGER_FILE)

    def pointers(self) -> tuple[str | None, str | None]:
        """(champion, challenger), as a worker polls them."""
        return self.champion_version(), self.challenger_version()

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change, oldest first."""
        try:
            lines = (self.root / HISTORY_FILE).read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def summaries(self) -> list[VersionSummary]:
        champion, challenger = self.pointers()
        found = []
        for version in self.versions():
            try:
                manifest = read_manifest(self.root / version)
            except ArtifactError:
                continue
            kind = str(manifest.get("model_kind", "?"))
            ap = manifest.get("metrics", {}).get(kind, {}).get("average_precision")
            role = ("champion" if version == champion
                    else "challenger" if version == challenger else "")
            found.append(VersionSummary(version, str(manifest.get("created_at", "")), kind,
                                        float(ap) if ap is not None else None, role))
        return found

    # -- changes -------------------------------------------------------------------

    def check_promotable(self, version: str, feature_names: Sequence[str],
                         schema_digest: str | None) -> dict[str, Any]:
        """The version's manifest if it can serve the running feature set: its signature
        verifies with a trusted key, every file matches its hash, and the feature order
        and schema are the running ones."""
        return self._promotable(version, feature_names, schema_digest)[0]

    def _promotable(self, version: str, feature_names: Sequence[str],
                    schema_digest: str | None) -> tuple[dict[str, Any], str]:
        directory = self._require(version)
        verified = verify_artifact(directory, self._ring)
        _check_version(directory, verified.manifest, version)
        check_feature_contract(verified.manifest, feature_names, schema_digest)
        return verified.manifest, verified.signed_by

    def promote(self, version: str, feature_names: Sequence[str],
                schema_digest: str | None, by: str = "cli") -> str | None:
        """Make ``version`` the champion; returns the previous champion. A challenger
        promoted to champion stops being the challenger."""
        _, signed_by = self._promotable(version, feature_names, schema_digest)
        with self._locked():
            previous = self.champion_version()
            self._write_pointer(CHAMPION_FILE, version)
            if self.challenger_version() == version:
                self._write_pointer(CHALLENGER_FILE, None)
            self._record("promote", version, previous, by, signed_by)
        return previous

    def rollback(self, feature_names: Sequence[str], schema_digest: str | None,
                 by: str = "cli") -> tuple[str, str]:
        """Restore the champion before the current one; returns (from, to)."""
        with self._locked():
            stack = self._champion_stack()
            if len(stack) < 2:
                raise ArtifactError(f"no earlier champion to roll back to in {self.root}")
            current, target = stack[-1], stack[-2]
            _, signed_by = self._promotable(target, feature_names, schema_digest)
            self._write_pointer(CHAMPION_FILE, target)
            self._record("rollback", target, current, by, signed_by)
        return current, target

    def set_challenger(self, version: str | None, feature_names: Sequence[str],
                       schema_digest: str | None, by: str = "cli") -> str | None:
        """Score ``version`` in shadow beside the champion (None: stop); returns the
        previous challenger."""
        signed_by = ""
        if version is not None:
            _, signed_by = self._promotable(version, feature_names, schema_digest)
            if version == self.champion_version():
                raise ArtifactError(f"{version} is the champion; a challenger must be "
                                    f"another version")
        with self._locked():
            previous = self.challenger_version()
            self._write_pointer(CHALLENGER_FILE, version)
            self._record("challenger" if version else "challenger-cleared",
                         version, previous, by, signed_by)
        return previous

    # -- loading -------------------------------------------------------------------

    def load(self, version: str) -> Artifact:
        """The version's verified artifact (unknown versions are named in the error)."""
        directory = self._require(version)
        artifact = load_artifact(directory, self._ring)
        _check_version(directory, artifact.manifest, version)
        return artifact

    def load_version(self, version: str | None = None) -> Artifact:
        """The given version's verified artifact, or the champion's when None."""
        return self.load_champion() if version is None else self.load(version)

    def load_champion(self) -> Artifact:
        version = self.champion_version()
        if version is None:
            raise ArtifactError(
                f"no champion model in {self.root}: run `fraudstream train` first")
        return self.load(version)

    # -- internals -----------------------------------------------------------------

    def _champion_stack(self) -> list[str]:
        """Champions in the order they took over, rolled-back ones removed."""
        stack: list[str] = []
        for entry in self.history():
            if entry.get("action") == "promote" and entry.get("version"):
                if not stack and entry.get("previous"):
                    stack.append(str(entry["previous"]))  # set before history was kept
                stack.append(str(entry["version"]))
            elif entry.get("action") == "rollback" and stack:
                stack.pop()
        current = self.champion_version()
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)  # a champion set before history was kept
        return stack

    def _require(self, version: str) -> Path:
        directory = self.version_dir(version)
        if not directory.is_dir():
            known = ", ".join(self.versions()) or "none"
            raise ArtifactError(f"no model version {version} in {self.root} (versions: "
                                f"{known})")
        return directory

    def _read_pointer(self, name: str) -> str | None:
        try:
            text = (self.root / name).read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    def _write_pointer(self, name: str, version: str | None) -> None:
        path = self.root / name
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        tmp = self.root / f".{name}.{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, path)

    def _record(self, action: str, version: str | None, previous: str | None,
                by: str, signed_by: str = "") -> None:
        entry = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                 "action": action, "version": version, "previous": previous, "by": by,
                 "user": _user(), "host": socket.gethostname(), "signed_by": signed_by}
        with open(self.root / HISTORY_FILE, "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _check_version(directory: Path, manifest: dict[str, Any], version: str) -> None:
    """A signed artifact copied under another version's name is refused: the pointer
    names what gets scored."""
    if manifest["version"] != version:
        raise ArtifactError(f"model artifact {directory} holds version "
                            f"{manifest['version']!r}, not {version!r}; refusing it")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return str(os.getuid())
