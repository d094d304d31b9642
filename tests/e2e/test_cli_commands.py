"""Commands as users run them: one readable line and a non-zero exit on every error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.topics import project_topics
from tests.e2e.cli import run_cli


def test_topics_create_twice_is_harmless_and_shrinking_fails(settings: Settings) -> None:
    first = run_cli(settings, "topics", "create", "--partitions", "3")
    assert first.returncode == 0, first.stderr
    topics = len(project_topics(settings))
    assert topics == 5  # transactions, decisions, labels, dead letters, shadow decisions
    assert first.stdout.count("(created)") == topics
    again = run_cli(settings, "topics", "create", "--partitions", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(exists)") == topics
    shrink = run_cli(settings, "topics", "create", "--partitions", "1")
    assert shrink.returncode != 0
    lines = shrink.stderr.strip().splitlines()
    assert lines == [f"fraudstream: error: topic {settings.topic_transactions} has 3 "
                     "partitions; refusing to shrink it to 1"]


def test_bad_arguments_and_configuration_fail_in_one_line(settings: Settings) -> None:
    cases = [
        (("topics", "create", "--partitions", "-2"), {}),
        (("simulate", "--rate", "10", "--out", "x.parquet"), {}),
        (("worker",), {"FRAUDSTREAM_MAX_BATCH": "lots"}),
        (("worker",), {"FRAUDSTREAM_BUDGET_MS": "0"}),
        (("nonsense",), {}),
    ]
    for args, env in cases:
        result = run_cli(settings, *args, env=env)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0], (args, result.stderr)


def _copy_registry(settings: Settings, tmp_path: Path) -> tuple[Path, Path]:
    registry = tmp_path / "registry"
    shutil.copytree(settings.model_dir, registry)
    version = (registry / "CHAMPION").read_text().strip()
    return registry, registry / version


def test_worker_refuses_a_tampered_model(settings: Settings, tmp_path: Path) -> None:
    registry, artifact = _copy_registry(settings, tmp_path)
    model = artifact / "model.joblib"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed
    model.write_bytes(bytes(data))
    result = run_cli(settings.replace(model_dir=str(registry)), "worker")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "model.joblib does not match its sha256" in lines[0]


def test_worker_refuses_an_incomplete_model(settings: Settings, tmp_path: Path) -> None:
    registry, artifact = _copy_registry(settings, tmp_path)
    os.remove(artifact / "model.joblib")
    result = run_cli(settings.replace(model_dir=str(registry)), "worker")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"fraudstream: error: model artifact {artifact}: file model.joblib is missing"]


def test_train_writes_a_verified_artifact(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "history.parquet"
    simulated = run_cli(settings, "simulate", "--customers", "200", "--terminals", "400",
                        "--days", "30", "--out", str(data))
    assert simulated.returncode == 0, simulated.stderr
    registry = tmp_path / "models"
    trained = run_cli(settings, "train", "--data", str(data), "--registry", str(registry))
    assert trained.returncode == 0, trained.stderr
    assert "(champion)" in trained.stdout
    from fraudstream.models.registry import Registry

    artifact = Registry(registry).load_champion()
    assert set(artifact.manifest["files"]) == {"model.joblib", "report.md", "scorer.so"}
    assert artifact.manifest["compiled"] == "scorer.so"
    assert set(artifact.manifest["metrics"]) == {"hgb", "logreg"}
