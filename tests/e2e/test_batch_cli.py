"""score-file and export-onnx as users run them: results on good input, one readable
line and a non-zero exit on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.e2e.cli import run_cli
from tests.population import recent


@pytest.fixture(scope="module")
def transactions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("batch")
    simulate(recent(8, customers=150, terminals=300, seed=2)).to_parquet(
        directory / "transactions.parquet", index=False)
    return directory / "transactions.parquet"


def one_error_line(result: object) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fraudstream: error: "), lines[0]
    return lines[0].removeprefix("fraudstream: error: ")


def test_score_file_writes_one_decision_per_valid_row_and_lists_the_rest(
        settings: Settings, transactions: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(transactions)
    good = run_cli(settings, "score-file", str(transactions), "-o", str(tmp_path / "d.parquet"))
    assert good.returncode == 0, good.stderr
    assert f"scored {len(frame):,} of {len(frame):,} rows with model " in good.stdout
    assert "rows/s" in good.stdout and "rejected 0 rows" in good.stdout
    decisions = pd.read_parquet(tmp_path / "d.parquet")
    assert decisions.columns.tolist() == ["transaction_id", "customer_id", "score", "decision",
                                          "model_version", "reasons", "degraded"]
    assert decisions["transaction_id"].tolist() == [str(i) for i in frame["transaction_id"]]
    assert len(pd.read_parquet(tmp_path / "d.rejects.parquet")) == 0

    text = frame.astype(str)
    text.loc[5, "amount"] = "0"
    text.loc[6, "terminal_id"] = ""
    with open(tmp_path / "in.csv", "w") as handle:
        handle.write(text.to_csv(index=False))
        handle.write("1,2,3\n")  # a row of three columns
    mixed = run_cli(settings, "score-file", str(tmp_path / "in.csv"), "-o",
                    str(tmp_path / "d.csv"), "--rejects", str(tmp_path / "bad.csv"))
    assert mixed.returncode == 0, mixed.stderr
    assert f"scored {len(frame) - 2:,} of {len(frame) + 1:,} rows" in mixed.stdout
    assert "rejected 3 rows" in mixed.stdout
    rejects = pd.read_csv(tmp_path / "bad.csv", keep_default_na=False)
    assert rejects["row"].tolist() == [6, 7, len(frame) + 1]
    assert rejects["reason"].tolist() == ["amount must be > 0", "terminal_id is missing",
                                          "expected 7 columns, got 3"]
    written = pd.read_csv(tmp_path / "d.csv", dtype={"transaction_id": str})
    assert len(written) == len(frame) - 2
    assert json.loads(written["degraded"][0]) == []


def test_bad_score_file_inputs_fail_in_one_line(settings: Settings, transactions: Path,
                                                tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("transaction_id,timestamp,customer_id,terminal_id,"
                                         "amount\n")
    (tmp_path / "nocol.csv").write_text("transaction_id,timestamp,customer_id\n1,2,3\n")
    (tmp_path / "fake.parquet").write_text("transaction_id,timestamp\n")
    (tmp_path / "all-bad.csv").write_text("transaction_id,timestamp,customer_id,terminal_id,"
                                          "amount\n1,yesterday,c,t,5\n")
    out = str(tmp_path / "out.parquet")
    cases = [
        ((str(tmp_path / "missing.parquet"), "-o", out), "does not exist"),
        ((str(tmp_path / "empty.csv"), "-o", out), "is empty"),
        ((str(tmp_path / "header.csv"), "-o", out), "has no rows"),
        ((str(tmp_path / "nocol.csv"), "-o", out), "has no column terminal_id, amount"),
        ((str(tmp_path / "fake.parquet"), "-o", out), "as Parquet"),
        ((str(tmp_path), "-o", out), "unknown format"),
        ((str(tmp_path / "all-bad.csv"), "-o", out), "no valid transaction"),
        ((str(transactions), "-o", str(tmp_path / "out.json")), "output"),
        ((str(transactions), "-o", str(transactions)), "three different files"),
        ((str(transactions), "-o", out, "--version", "v0"), "no model version v0"),
    ]
    for args, fragment in cases:
        message = one_error_line(run_cli(settings, "score-file", *args))
        assert fragment in message, (args, message)
    # Only the all-rejected file got as far as writing: no decision, and its reasons.
    assert len(pd.read_parquet(out)) == 0
    assert pd.read_parquet(tmp_path / "out.rejects.parquet")["reason"].tolist() == [
        "timestamp is not RFC 3339 or epoch milliseconds"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temp files"


def test_export_onnx_writes_a_model_and_fails_in_one_line(settings: Settings,
                                                          tmp_path: Path) -> None:
    done = run_cli(settings, "export-onnx", "-o", str(tmp_path / "edge" / "model.onnx"))
    assert done.returncode == 0, done.stderr
    assert "as ONNX" in done.stdout and "registered" not in done.stdout
    sidecar = json.loads((tmp_path / "edge" / "model.onnx.json").read_text())
    assert sidecar["max_difference"] <= 1e-5
    cases = [
        (("export-onnx", "--registry", str(tmp_path / "nothing")), "no champion model in"),
        (("export-onnx", "--version", "v0"), "no model version v0"),
        (("export-onnx", "-o", str(tmp_path / "model.txt")), "must be a .onnx file"),
    ]
    for args, fragment in cases:
        assert fragment in one_error_line(run_cli(settings, *args)), args
