"""Batch input and output files: formats, chunks, malformed rows, readable errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream.batch import files
from fraudstream.batch.files import InputFileError, TableWriter, open_input
from fraudstream.errors import ConfigError

HEADER = "transaction_id,timestamp,customer_id,terminal_id,amount\n"


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("name, content, message", [
    ("in.parquet", b"", "input {path} is empty"),
    ("in.csv", b"", "input {path} is empty"),
    ("in.csv", b"\n\n", "input {path} has no header line"),
    ("in.csv", b"PAR1\x00\x01", "input {path} is a Parquet file, not CSV: name it .parquet"),
    ("in.csv", b"\xff\xfe\x00a,b\n", "input {path} is not UTF-8 text, so not a CSV file"),
    ("in.parquet", HEADER.encode(), "cannot read {path} as Parquet: "),
])
def test_unreadable_inputs_fail_with_one_line(tmp_path: Path, name: str, content: bytes,
                                              message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputFileError) as caught:
        open_input(path)
    text = str(caught.value)
    assert text.startswith(message.format(path=path)) and "\n" not in text


def test_missing_files_directories_and_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        open_input(tmp_path / "nothing.csv")
    (tmp_path / "dir.parquet").mkdir()
    with pytest.raises(InputFileError, match="is a directory"):
        open_input(tmp_path / "dir.parquet")
    with pytest.raises(ConfigError, match=r"unknown format '\.json'; name it \.parquet or \.csv"):
        open_input(tmp_path / "in.json")


def test_csv_columns_are_text_and_malformed_rows_keep_their_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 256)  # many chunks
    lines = []
    for i in range(1, 61):
        if i % 7 == 0:
            lines.append(f"{i},1764072000000,c")  # two columns short
        elif i == 30:
            lines.append(f'"{i}","1764072000000","multi\nline",t,1.0')
        else:
            lines.append(f"{i:03d},1764072000000,c{i},t{i},{i}.5")
    path = write_csv(tmp_path / "in.csv", lines)
    source = open_input(path)
    assert source.unit == "bytes" and source.total == path.stat().st_size
    chunks = list(source.chunks(["transaction_id", "amount", "no_such_column"]))
    assert len(chunks) > 3
    table = pa.concat_tables(c.table for c in chunks)
    assert table.column_names == ["transaction_id", "amount"]
    assert all(pa.types.is_string(t) for t in table.schema.types)
    rows = np.concatenate([c.rows for c in chunks])
    ids = table.column("transaction_id").to_pylist()
    assert [int(i) for i in ids] == rows.tolist(), "row numbers follow the data rows"
    assert ids[0] == "001", "text is kept as written"
    assert [m.row for m in source.malformed] == list(range(7, 61, 7))
    assert source.malformed[0].reason == "expected 5 columns, got 3"
    assert chunks[-1].done == path.stat().st_size


def test_parquet_chunks_and_row_numbers(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_ROWS", 4)
    path = tmp_path / "in.parquet"
    pd.DataFrame({"transaction_id": range(10), "amount": np.arange(10) + 0.5}).to_parquet(path)
    source = open_input(path)
    assert source.typed and source.total == 10 and pa.types.is_integer(
        source.types["transaction_id"])
    chunks = list(source.chunks(["amount"]))
    assert [c.rows.tolist() for c in chunks] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert [c.done for c in chunks] == [4, 8, 10]
    assert chunks[0].table.column_names == ["amount"]


SCHEMA = pa.schema([("id", pa.string()), ("score", pa.float64()),
                    ("reasons", pa.list_(pa.string()))])
TABLE = pa.table({"id": ["a", "b"], "score": [0.25, 1 / 3],
                  "reasons": [[], ["amount", 'say "hi", twice']]}, schema=SCHEMA)


def test_csv_output_writes_lists_as_json(tmp_path: Path) -> None:
    writer = TableWriter(tmp_path / "out.csv", SCHEMA, "output")
    writer.write(TABLE)
    writer.write(TABLE.slice(1))
    writer.commit()
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    flagged = '["amount","say \\"hi\\", twice"]'
    assert [r["reasons"] for r in rows] == ["[]", flagged, flagged]
    assert float(rows[1]["score"]) == 1 / 3, "floats round-trip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_parquet_output_appears_only_on_commit(tmp_path: Path) -> None:
    writer = TableWriter(tmp_path / "out.parquet", SCHEMA, "output")
    writer.write(TABLE)
    assert not (tmp_path / "out.parquet").exists()
    writer.commit()
    assert pq.read_table(tmp_path / "out.parquet").equals(TABLE)
    aborted = TableWriter(tmp_path / "other.parquet", SCHEMA, "output")
    aborted.write(TABLE)
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InputFileError, match=r"^cannot write output "):
        TableWriter(tmp_path / "file" / "out.parquet", SCHEMA, "output")
