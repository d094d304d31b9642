"""Model registry: versions side by side in one directory, one champion pointer."""

from __future__ import annotations

import os
from pathlib import Path

from models.artifact import Artifact, ArtifactError, load_artifact, read_manifest

CHAMPION_FILE = "CHAMPION"


class Registry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def version_dir(self, version: str) -> Path:
        return self.root / version

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and (p / "manifest.json").is_file())

    def champion_version(self) -> str | None:
        try:
            text = (self.root / CHAMPION_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    def set_champion(self, version: str) -> None:
        read_manifest(self.version_dir(version))
        tmp = self.root / f".{CHAMPION_FILE}.{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / CHAMPION_FILE)

    def load_champion(self) -> Artifact:
        version = self.champion_version()
        if version is None:
            raise ArtifactError(
                f"no champion model in {self.root}: run `fraudstream train` first")
        return load_artifact(self.version_dir(version))

    def load_version(self, version: str | None = None) -> Artifact:
        """The given version's verified artifact, or the champion's when None."""
        if version is None:
            return self.load_champion()
        if version not in self.versions():
            known = ", ".join(self.versions()) or "none"
            raise ArtifactError(f"no model version {version} in {self.root} "
                                f"(versions: {known})")
        return load_artifact(self.version_dir(version))
