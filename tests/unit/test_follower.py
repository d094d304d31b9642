"""models.follower: a promoted champion or a new challenger is loaded off the hot path and
handed over once; a refused version never replaces the model being scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models.artifact import MODEL_FILE, Artifact
from fraudstream.models.follower import ModelSet, RegistryFollower
from fraudstream.models.registry import CHAMPION_FILE, Registry
from fraudstream.models.scorer import Scorer
from tests.model_factory import probe_rows, write_model
from tests.waiting import wait_for

SCHEMA = feature_schema_digest()


def make_scorer(artifact: Artifact) -> Scorer:
    return Scorer(artifact, FEATURE_NAMES, SCHEMA)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    for i, version in enumerate(("v1", "v2", "v3")):
        write_model(tmp_path, version, seed=i)
    registry = Registry(tmp_path)
    registry.promote("v1", FEATURE_NAMES, SCHEMA)
    return registry


def follower_of(registry: Registry, events: list[tuple[str, str, str]] | None = None,
                ) -> RegistryFollower:
    current = ModelSet(make_scorer(registry.load_champion()))
    listener = (lambda *event: events.append(event)) if events is not None else None
    return RegistryFollower(registry, current, make_scorer, interval_s=0.05,
                            listener=listener)


def test_nothing_changes_until_a_pointer_moves(registry: Registry) -> None:
    follower = follower_of(registry)
    assert follower.poll_once() is None
    assert follower.take() is None


def test_a_promotion_is_handed_over_once(registry: Registry) -> None:
    events: list[tuple[str, str, str]] = []
    follower = follower_of(registry, events)
    registry.promote("v2", FEATURE_NAMES, SCHEMA)
    fresh = follower.poll_once()
    assert fresh is not None and fresh.versions == ("v2", None)
    taken = follower.take()
    assert taken is fresh
    assert follower.take() is None
    assert follower.poll_once() is None
    assert events == [("champion", "v2", "loaded")]
    rows = probe_rows()
    expected = Scorer(registry.load("v2"), FEATURE_NAMES).score(rows).scores
    np.testing.assert_array_equal(taken.champion.score(rows).scores, expected)


def test_a_tampered_version_is_refused_once_and_the_champion_stays(
        registry: Registry, tmp_path: Path) -> None:
    events: list[tuple[str, str, str]] = []
    follower = follower_of(registry, events)
    with open(tmp_path / "v2" / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    (tmp_path / CHAMPION_FILE).write_text("v2\n")  # bypassing promote's own check
    assert follower.poll_once() is None
    assert follower.poll_once() is None  # not retried while the pointer stays
    assert events == [("champion", "v2", "failed")]
    registry.promote("v3", FEATURE_NAMES, SCHEMA)
    fresh = follower.poll_once()
    assert fresh is not None and fresh.versions == ("v3", None)
    assert events[-1] == ("champion", "v3", "loaded")


def test_challenger_comes_and_goes_and_a_promoted_one_is_not_loaded_again(
        registry: Registry) -> None:
    events: list[tuple[str, str, str]] = []
    follower = follower_of(registry, events)
    registry.set_challenger("v2", FEATURE_NAMES, SCHEMA)
    with_challenger = follower.poll_once()
    assert with_challenger is not None and with_challenger.versions == ("v1", "v2")
    registry.promote("v2", FEATURE_NAMES, SCHEMA)
    promoted = follower.poll_once()
    assert promoted is not None and promoted.versions == ("v2", None)
    assert promoted.champion is with_challenger.challenger
    assert events == [("challenger", "v2", "loaded")]


def test_a_refused_challenger_leaves_the_champion_alone(registry: Registry,
                                                        tmp_path: Path) -> None:
    events: list[tuple[str, str, str]] = []
    follower = follower_of(registry, events)
    write_model(tmp_path, "narrow", feature_names=FEATURE_NAMES[:-1])
    (tmp_path / "CHALLENGER").write_text("narrow\n")
    assert follower.poll_once() is None
    assert events == [("challenger", "narrow", "failed")]


def test_the_thread_picks_up_a_promotion_by_itself(registry: Registry) -> None:
    follower = follower_of(registry).start()
    try:
        registry.promote("v3", FEATURE_NAMES, SCHEMA)
        taken = wait_for(follower.take, "the follower to load v3", 10, 0.01)
    finally:
        follower.stop()
    assert taken is not None and taken.versions == ("v3", None)


def test_a_pointer_to_a_version_signed_by_no_trusted_key_is_refused(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can write the registry can move the pointer and rewrite a manifest with
    matching hashes, but cannot sign it: the follower keeps the champion it has."""
    import hashlib
    import json

    events: list[tuple[str, str, str]] = []
    follower = follower_of(registry, events)
    manifest_path = tmp_path / "v2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    with open(tmp_path / "v2" / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    manifest["files"][MODEL_FILE] = hashlib.sha256(
        (tmp_path / "v2" / MODEL_FILE).read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / CHAMPION_FILE).write_text("v2\n")
    with caplog.at_level("ERROR", logger="fraudstream.models"):
        assert follower.poll_once() is None
    assert events == [("champion", "v2", "failed")]
    assert any("signature that does not verify" in r.getMessage() for r in caplog.records)
