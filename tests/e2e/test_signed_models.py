"""Signed models as users meet them: a worker, the HTTP scorer and score-file refuse an
unsigned champion, and a process without a trusted key refuses to start, each in one
line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fraudstream.models.signing import SIGNATURE_FILE
from fraudstream.settings import Settings
from tests.conftest import ModelPair
from tests.e2e.cli import run_cli
from tests.http_helpers import make_keys, transaction

NO_KEYS = "fraudstream: error: no trusted model keys: set FRAUDSTREAM_MODEL_PUBLIC_KEYS"


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def commands(tmp_path: Path) -> list[tuple[str, ...]]:
    """Every command that loads the champion, runnable here."""
    rows = tmp_path / "rows.csv"
    one = transaction("s1", "c1", "t1", 30.0, int(time.time() * 1000) - 60_000)
    rows.write_text(",".join(one) + "\n" + ",".join(str(v) for v in one.values()) + "\n")
    return [("worker",), ("serve", "--port", "1", "--host", "127.0.0.1"),
            ("score-file", str(rows), "--output", str(tmp_path / "scored.csv"))]


def test_an_unsigned_champion_is_refused_by_every_command_that_loads_it(
        settings: Settings, model_pair: ModelPair, tmp_path: Path,
        commands: list[tuple[str, ...]]) -> None:
    (model_pair.registry.root / model_pair.champion / SIGNATURE_FILE).unlink()
    keys = make_keys(tmp_path)
    s = settings.replace(model_dir=str(model_pair.registry.root), api_keys_file=str(keys.path))
    for command in commands:
        result = run_cli(s, *command, timeout=120)
        assert result.returncode != 0, command
        line = one_error_line(result.stderr)
        assert "manifest is not signed; refusing it" in line, (command, line)


def test_without_a_trusted_key_nothing_that_loads_a_model_starts(
        settings: Settings, tmp_path: Path, commands: list[tuple[str, ...]]) -> None:
    keys = make_keys(tmp_path)
    s = settings.replace(model_public_keys=None, model_signing_key=None,
                         api_keys_file=str(keys.path))
    for command in commands:
        result = run_cli(s, *command, timeout=120)
        assert result.returncode != 0, command
        assert one_error_line(result.stderr).startswith(NO_KEYS), (command, result.stderr)
