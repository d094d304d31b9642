"""`fraudstream models ...`: list, promote, roll back, shadow and sign registry versions."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models import signing
from fraudstream.models.artifact import ArtifactError, sign_artifact
from fraudstream.models.registry import Registry


def list_versions(root: Path) -> int:
    registry = Registry(root)
    summaries = registry.summaries()
    if not summaries:
        raise ArtifactError(f"no model versions in {root}: run `fraudstream train` first")
    table = Table(title=f"models in {root}")
    table.add_column("version", no_wrap=True)
    for column in ("kind", "created", "average precision", "role"):
        table.add_column(column)
    for s in summaries:
        ap = f"{s.average_precision:.4f}" if s.average_precision is not None else "-"
        table.add_row(s.version, s.model_kind, s.created_at[:19], ap, s.role)
    Console().print(table)
    return 0


def show_history(root: Path) -> int:
    entries = Registry(root).history()
    if not entries:
        print(f"no registry changes recorded in {root}")
        return 0
    for e in entries:
        print(f"{e.get('at', '?')}  {e.get('action', '?'):<18} {e.get('version') or '-':<28} "
              f"(was {e.get('previous') or '-'}) by {e.get('by', '?')} "
              f"{e.get('user', '?')}@{e.get('host', '?')}"
              + (f" signed by key {e['signed_by']}" if e.get("signed_by") else ""))
    return 0


def promote(root: Path, version: str) -> int:
    previous = Registry(root).promote(version, FEATURE_NAMES, feature_schema_digest())
    print(f"champion: {version} (was {previous or 'none'}); workers switch within "
          f"FRAUDSTREAM_MODEL_POLL_S")
    return 0


def rollback(root: Path) -> int:
    current, target = Registry(root).rollback(FEATURE_NAMES, feature_schema_digest())
    print(f"champion: {target} (rolled back from {current})")
    return 0


def shadow(root: Path, version: str | None) -> int:
    previous = Registry(root).set_challenger(version, FEATURE_NAMES, feature_schema_digest())
    if version is None:
        print(f"no challenger (was {previous or 'none'})")
    else:
        print(f"challenger: {version} (was {previous or 'none'}), scored in shadow")
    return 0


def sign(root: Path, version: str, key: Path | None) -> int:
    """Sign a version with ``key`` (default: the configured signing key). A version that is
    already signed must verify with a trusted key first (a key rotation re-signs)."""
    signer = signing.load_signer(key) if key is not None else signing.signer()
    key_id = sign_artifact(Registry(root).version_dir(version), signer)
    print(f"{version}: manifest signed with key {key_id}")
    return 0


def keygen(private: Path) -> int:
    public = public_key_path(private)
    made = signing.generate(private, public)
    print(f"signing key {made.key_id}: private {private} (0600, keep it off the registry "
          f"and the workers), public {public} (FRAUDSTREAM_MODEL_PUBLIC_KEYS)")
    return 0


def public_key_path(private: Path) -> Path:
    """``release.pem`` -> ``release.pub.pem``: still a ``*.pem`` for a key directory."""
    return private.with_name(private.stem + ".pub.pem")
