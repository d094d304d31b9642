"""Transaction files in, decision files out: Parquet or CSV by extension, in chunks.

A CSV file is text: every column is read as text and interpreted by the validator, so
ids keep their exact spelling ("007" stays "007"). A Parquet file is typed: the validator
checks each column's type. Outputs are written to a temporary file beside the target and
renamed into place when complete, so a failed run never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fraudstream.errors import ConfigError, FraudstreamError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
CHUNK_ROWS = 131_072
CSV_BLOCK_BYTES = 8 << 20
PARQUET_MAGIC = b"PAR1"


class InputFileError(FraudstreamError):
    """The input file cannot be read or does not hold transactions as required."""


def file_format(path: Path, role: str) -> str:
    """'parquet' or 'csv' from the file name; a ConfigError for anything else."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{role} {path}: unknown format {path.suffix or '(no extension)'!r}; "
                          f"name it .parquet or .csv")
    return fmt


@dataclass
class Chunk:
    """Consecutive rows of the input; ``rows`` are their 1-based data row numbers."""

    table: pa.Table
    rows: np.ndarray
    done: int  # progress units (rows or bytes) consumed so far


@dataclass
class MalformedRow:
    row: int
    reason: str


@dataclass
class InputFile:
    """An open transaction file: its columns, and its rows chunk by chunk."""

    path: Path
    fmt: str
    columns: list[str]
    types: dict[str, pa.DataType]
    total: int  # progress units: rows (Parquet) or bytes (CSV)
    unit: str
    malformed: list[MalformedRow] = field(default_factory=list)
    _wanted: list[str] = field(default_factory=list)

    @property
    def typed(self) -> bool:
        return self.fmt == "parquet"

    def chunks(self, wanted: Sequence[str]) -> Iterator[Chunk]:
        """Chunks of the ``wanted`` columns (those the file has)."""
        columns = [c for c in wanted if c in self.columns]
        try:
            if self.fmt == "parquet":
                yield from self._parquet_chunks(columns)
            else:
                yield from self._csv_chunks(columns)
        except (OSError, pa.ArrowException) as exc:
            raise InputFileError(f"cannot read {self.path}: {_one_line(exc)}") from None

    def _parquet_chunks(self, columns: list[str]) -> Iterator[Chunk]:
        done = 0
        parquet = pq.ParquetFile(self.path)
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
            rows = np.arange(done + 1, done + batch.num_rows + 1, dtype=np.int64)
            done += batch.num_rows
            yield Chunk(pa.Table.from_batches([batch]), rows, done)

    def _csv_chunks(self, columns: list[str]) -> Iterator[Chunk]:
        skipped: list[int] = []

        def on_invalid(row: Any) -> str:
            number = int(row.number) - 1  # pyarrow counts the header as row 1
            skipped.append(number)
            self.malformed.append(MalformedRow(number, f"expected {row.expected_columns} "
                                                       f"columns, got {row.actual_columns}"))
            return "skip"

        with open(self.path, "rb") as handle:
            reader = pa_csv.open_csv(
                handle,
                read_options=pa_csv.ReadOptions(use_threads=False,  # numbers invalid rows
                                                block_size=CSV_BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True,
                                                  invalid_row_handler=on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=columns,
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
            next_row = 1
            for batch in reader:
                rows = _rows_around(next_row, batch.num_rows, skipped)
                if rows.size:
                    next_row = int(rows[-1]) + 1
                yield Chunk(pa.Table.from_batches([batch]), rows, _position(handle))


def _rows_around(first: int, count: int, skipped: list[int]) -> np.ndarray:
    """The first ``count`` row numbers from ``first`` on that are not ``skipped``."""
    gaps = np.asarray(sorted(s for s in skipped if s >= first), dtype=np.int64)
    candidates = np.arange(first, first + count + gaps.size, dtype=np.int64)
    return candidates[~np.isin(candidates, gaps)][:count]


def _position(handle: BinaryIO) -> int:
    try:
        return handle.tell()
    except (OSError, ValueError):  # closed by the reader at the end
        return 0


def open_input(path: Path) -> InputFile:
    """Open ``path`` (by its extension) and read its column names and types; one readable
    InputFileError when it is missing, empty, unreadable or not in the format named."""
    fmt = file_format(path, "input")
    if not path.exists():
        raise InputFileError(f"input {path} does not exist")
    if path.is_dir():
        raise InputFileError(f"input {path} is a directory, not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise InputFileError(f"input {path} is empty")
    if fmt == "parquet":
        return _open_parquet(path)
    if head == PARQUET_MAGIC:
        raise InputFileError(f"input {path} is a Parquet file, not CSV: name it .parquet")
    return _open_csv(path, size)


def _open_parquet(path: Path) -> InputFile:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(f"cannot read {path} as Parquet: {_one_line(exc)}") from None
    schema = parquet.schema_arrow
    return InputFile(path, "parquet", list(schema.names),
                     {f.name: f.type for f in schema}, parquet.metadata.num_rows, "rows")


def _open_csv(path: Path, size: int) -> InputFile:
    try:
        with open(path, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), [])
    except UnicodeDecodeError:
        raise InputFileError(f"input {path} is not UTF-8 text, so not a CSV file") from None
    except (OSError, csv.Error) as exc:
        raise InputFileError(f"cannot read {path} as CSV: {exc}") from None
    if not any(name.strip() for name in header):
        raise InputFileError(f"input {path} has no header line")
    return InputFile(path, "csv", header, {name: pa.string() for name in header}, size,
                     "bytes")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def _csv_ready(table: pa.Table) -> pa.Table:
    """Lists become JSON text (``["amount","is_night"]``): CSV has no list type."""
    columns = []
    for column in table.columns:
        if pa.types.is_list(column.type):
            column = pa.array([_encode_json(v) if v else "[]" for v in column.to_pylist()],
                              pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


class TableWriter:
    """Writes tables chunk by chunk to a temporary file; ``commit`` renames it into place."""

    def __init__(self, path: Path, schema: pa.Schema, role: str) -> None:
        self.path = path
        self.fmt = file_format(path, role)
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._schema = schema
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.fmt == "parquet":
                self._writer: Any = pq.ParquetWriter(self._tmp, schema)
            else:
                self._writer = pa_csv.CSVWriter(self._tmp, _csv_ready(schema.empty_table()).schema)
        except (OSError, pa.ArrowException) as exc:
            raise InputFileError(f"cannot write {role} {path}: {_one_line(exc)}") from None

    def write(self, table: pa.Table) -> None:
        table = table.cast(self._schema)
        self._writer.write_table(table if self.fmt == "parquet" else _csv_ready(table))

    def commit(self) -> None:
        self._close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file (nothing happens after a commit)."""
        try:
            self._close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
