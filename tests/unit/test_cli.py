"""fraudstream.cli: every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from fraudstream.cli import main
from fraudstream.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No FRAUDSTREAM_ variable leaks in, and main()'s logging setup is undone after."""
    for name in list(os.environ):
        if name.startswith("FRAUDSTREAM_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    kafka = logging.getLogger("fraudstream.kafka")
    saved = root.handlers[:], root.level, kafka.level
    yield
    root.handlers[:], level, kafka_level = saved
    root.setLevel(level)
    kafka.setLevel(kafka_level)


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, captured.err.splitlines()


@pytest.mark.parametrize("argv, fragment", [
    ([], "the following arguments are required: command"),
    (["--bogus", "config"], "unrecognized arguments: --bogus"),
    (["launch"], "invalid choice: 'launch'"),
    (["--log-level", "loud", "config"], "invalid choice: 'loud'"),
    (["--log-format", "xml", "config"], "invalid choice: 'xml'"),
    (["topics"], "the following arguments are required: topics_command"),
    (["topics", "create", "--partitions", "0"], "0 is not a positive integer"),
    (["topics", "create", "--partitions", "many"], "invalid positive_int value: 'many'"),
    (["topics", "create", "--replication", "-1"], "-1 is not a positive integer"),
    (["simulate", "--days", "3"], "one of the arguments --out --rate is required"),
    (["simulate", "--out", "x.parquet", "--rate", "5"], "not allowed with argument"),
    (["simulate", "--rate", "0"], "0 is not a positive number"),
    (["simulate", "--out", "x.csv", "--start", "April"], "April is not a date like 2018-04-01"),
    (["train", "--model", "forest"], "invalid choice: 'forest'"),
    (["worker", "--max-batch", "0"], "0 is not a positive integer"),
    (["demo", "--duration", "soon"], "invalid positive_float value: 'soon'"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], fragment: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    out, lines = stderr_lines(capsys)
    assert out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith("fraudstream")
    assert ": error: " in lines[0]
    assert fragment in lines[0]
    assert lines[0].endswith("(see --help)")


def test_topics_create_without_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "create"]) == 2
    out, lines = stderr_lines(capsys)
    assert out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith("fraudstream: error: no broker configured")
    assert "FRAUDSTREAM_KAFKA_BOOTSTRAP" in lines[0]


def test_streaming_simulation_without_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate", "10", "--days", "1"]) == 2
    out, lines = stderr_lines(capsys)
    assert out == "" and len(lines) == 1
    assert "FRAUDSTREAM_KAFKA_BOOTSTRAP" in lines[0]


def test_invalid_environment_variable_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MAX_BATCH", "lots")
    assert main(["config"]) == 2
    out, lines = stderr_lines(capsys)
    assert out == ""
    assert lines == ["fraudstream: error: FRAUDSTREAM_MAX_BATCH='lots' is not a valid int"]


def test_invalid_setting_value_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_BUDGET_MS", "-3")
    assert main(["config"]) == 2
    _, lines = stderr_lines(capsys)
    assert lines == ["fraudstream: error: budget_ms must be > 0"]


def test_config_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    out, lines = stderr_lines(capsys)
    assert lines == []
    names = [line.split()[0] for line in out.splitlines()]
    assert "FRAUDSTREAM_KAFKA_BOOTSTRAP" in names
    assert "FRAUDSTREAM_BUDGET_MS" in names
    assert all(name.startswith("FRAUDSTREAM_") for name in names)
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))


def test_simulate_to_a_csv_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "tx.csv"
    assert main(["simulate", "--out", str(target), "--customers", "30", "--terminals", "60",
                 "--days", "2", "--seed", "5"]) == 0
    out, lines = stderr_lines(capsys)
    assert lines == []
    frame = pd.read_csv(target)
    assert len(frame) > 0
    assert out.strip() == (f"wrote {len(frame)} transactions ({int(frame['is_fraud'].sum())} "
                           f"frauds) over 2 days to {target}")


def test_train_on_an_unreadable_file_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "missing.parquet"),
                 "--registry", str(tmp_path / "registry")]) == 2
    out, lines = stderr_lines(capsys)
    assert out == "" and len(lines) == 1
    assert lines[0].startswith("fraudstream: error: cannot read")
    assert "missing.parquet" in lines[0]
