"""models.registry: champion and challenger pointers, history, refusals at promote time."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models import signing
from fraudstream.models.artifact import MODEL_FILE, ArtifactError
from fraudstream.models.registry import CHAMPION_FILE, HISTORY_FILE, Registry
from fraudstream.models.signing import SIGNATURE_FILE
from tests.model_factory import write_model

SCHEMA = feature_schema_digest()


def registry_with(tmp_path: Path, *versions: str) -> Registry:
    for i, version in enumerate(versions):
        write_model(tmp_path, version, seed=i)
    return Registry(tmp_path)


def promote(registry: Registry, version: str) -> str | None:
    return registry.promote(version, FEATURE_NAMES, SCHEMA)


def test_promote_moves_the_champion_and_records_who_and_what(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    assert registry.champion_version() is None
    assert promote(registry, "v1") is None
    assert promote(registry, "v2") == "v1"
    assert registry.champion_version() == "v2"
    history = registry.history()
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", "v1", None), ("promote", "v2", "v1")]
    assert all(e["by"] == "cli" and e["user"] and e["host"] and e["at"] for e in history)
    assert (tmp_path / CHAMPION_FILE).read_text() == "v2\n"


def test_unknown_version_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1")
    with pytest.raises(ArtifactError, match=r"no model version v9 .*versions: v1\)"):
        promote(registry, "v9")
    with pytest.raises(ArtifactError, match="not a model version name"):
        promote(registry, "../v1")


def test_a_tampered_model_is_refused_and_the_champion_stays(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    promote(registry, "v1")
    with open(tmp_path / "v2" / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        promote(registry, "v2")
    assert registry.champion_version() == "v1"
    assert len(registry.history()) == 1


def test_other_feature_order_or_schema_is_refused_at_promote_time(tmp_path: Path) -> None:
    write_model(tmp_path, "reordered", feature_names=[*FEATURE_NAMES[1:], FEATURE_NAMES[0]])
    write_model(tmp_path, "fewer", feature_names=FEATURE_NAMES[:-1])
    write_model(tmp_path, "old-schema", schema="0" * 64)
    registry = Registry(tmp_path)
    with pytest.raises(ArtifactError, match="same names in another order"):
        promote(registry, "reordered")
    with pytest.raises(ArtifactError, match=rf"missing \['{FEATURE_NAMES[-1]}'\]"):
        promote(registry, "fewer")
    with pytest.raises(ArtifactError, match="feature schema 000000000000"):
        promote(registry, "old-schema")
    assert registry.champion_version() is None
    assert registry.history() == []


def test_rollback_walks_back_through_the_champions(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2", "v3")
    for version in ("v1", "v2", "v3"):
        promote(registry, version)
    assert registry.rollback(FEATURE_NAMES, SCHEMA) == ("v3", "v2")
    assert registry.rollback(FEATURE_NAMES, SCHEMA) == ("v2", "v1")
    with pytest.raises(ArtifactError, match="no earlier champion"):
        registry.rollback(FEATURE_NAMES, SCHEMA)
    assert registry.champion_version() == "v1"
    promote(registry, "v3")
    assert registry.rollback(FEATURE_NAMES, SCHEMA) == ("v3", "v1")


def test_rollback_refuses_a_target_tampered_since(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    promote(registry, "v1")
    promote(registry, "v2")
    with open(tmp_path / "v1" / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        registry.rollback(FEATURE_NAMES, SCHEMA)
    assert registry.champion_version() == "v2"


def test_a_champion_from_before_history_is_a_rollback_target(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "legacy", "v2")
    (tmp_path / CHAMPION_FILE).write_text("legacy\n")  # as older releases left it
    promote(registry, "v2")
    assert registry.rollback(FEATURE_NAMES, SCHEMA) == ("v2", "legacy")


def test_challenger_pointer(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    promote(registry, "v1")
    with pytest.raises(ArtifactError, match="is the champion"):
        registry.set_challenger("v1", FEATURE_NAMES, SCHEMA)
    assert registry.set_challenger("v2", FEATURE_NAMES, SCHEMA) is None
    assert registry.pointers() == ("v1", "v2")
    roles = {s.version: s.role for s in registry.summaries()}
    assert roles == {"v1": "champion", "v2": "challenger"}
    promote(registry, "v2")  # the challenger wins: it is no longer its own shadow
    assert registry.pointers() == ("v2", None)
    registry.set_challenger("v1", FEATURE_NAMES, SCHEMA)
    assert registry.set_challenger(None, FEATURE_NAMES, SCHEMA) == "v1"
    assert registry.pointers() == ("v2", None)
    actions = [e["action"] for e in registry.history()]
    assert actions == ["promote", "challenger", "promote", "challenger",
                       "challenger-cleared"]


def test_summaries_skip_unreadable_versions(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert [s.version for s in registry.summaries()] == ["v1"]
    assert registry.summaries()[0].average_precision == pytest.approx(0.5)


def test_concurrent_changes_keep_every_history_line(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    errors: list[BaseException] = []

    def flip(version: str) -> None:
        try:
            for _ in range(20):
                Registry(tmp_path).promote(version, FEATURE_NAMES, SCHEMA)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(v,)) for v in ("v1", "v2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert len(lines) == 40
    assert all(json.loads(line)["action"] == "promote" for line in lines)
    assert registry.champion_version() in ("v1", "v2")


def test_promotion_refuses_a_version_whose_signature_does_not_verify(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1", "v2")
    promote(registry, "v1")
    manifest_path = tmp_path / "v2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["thresholds"] = {"review": 0.99, "decline": 1.0}  # hashes untouched
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="signature that does not verify"):
        promote(registry, "v2")
    (tmp_path / "v2" / SIGNATURE_FILE).unlink()
    with pytest.raises(ArtifactError, match="is not signed"):
        registry.set_challenger("v2", FEATURE_NAMES, SCHEMA)
    assert registry.pointers() == ("v1", None)


def test_history_names_who_promoted_and_the_key_that_signed(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1")
    registry.promote("v1", FEATURE_NAMES, SCHEMA, by="release-pipeline")
    (entry,) = registry.history()
    assert entry["by"] == "release-pipeline" and entry["user"] and entry["host"]
    assert entry["signed_by"] == signing.signer().key_id


def test_a_signed_artifact_copied_under_another_version_name_is_refused(
        tmp_path: Path) -> None:
    registry = registry_with(tmp_path, "v1")
    shutil.copytree(tmp_path / "v1", tmp_path / "v9")
    with pytest.raises(ArtifactError, match="holds version 'v1', not 'v9'"):
        promote(registry, "v9")
    with pytest.raises(ArtifactError, match="holds version 'v1', not 'v9'"):
        registry.load("v9")
