"""A history from a transaction file: the files ``score-file`` reads, checked the same way.

Rows are the stream's events in arrival order. Rows the worker would reject are left
out and written to a rejects file with the reason. Labels (``is_fraud``, optional
``label_time``) are counted after the transactions; a label confirmed after the history's
last transaction is not history yet and is left for the labels topic. Optional
``partition`` and ``offset`` columns give each row's place in the transactions topic
(an export of the topic carries them): with them the states guard those offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fraudstream.batch.files import InputFileError, TableWriter, file_format, open_input
from fraudstream.batch.rejects import Rejects
from fraudstream.batch.rows import Rows, accepted_part
from fraudstream.batch.validate import Checked, check_chunk, layout_of
from fraudstream.features.backfill import History, Progress, without_coordinates
from fraudstream.features.customer_state import NO_PARTITION
from fraudstream.features.online import LabelBatch, TransactionBatch

COORDINATES = ("partition", "offset")


@dataclass
class FileHistory:
    history: History
    rows: int  # rows read
    rejected: int  # rows left out (in the rejects file)
    later_labels: int  # frauds confirmed after the history's end, left out
    coordinates: bool  # the rows carry topic coordinates
    rejects: Path | None  # written only when something was rejected


def default_rejects_path(source: Path) -> Path:
    """``history.parquet`` -> ``history.rejects.parquet``."""
    return source.with_name(f"{source.stem}.rejects{source.suffix}")


def read_history(source: Path, rejects_path: Path | None = None,
                 progress: Progress = lambda *_: None) -> FileHistory:
    """The accepted rows of ``source`` as a history; one InputFileError when the file
    cannot be used at all."""
    rejects_path = rejects_path or default_rejects_path(source)
    file_format(rejects_path, "rejects file")
    opened = open_input(source)
    layout = layout_of(opened)
    present = [c for c in COORDINATES if c in opened.columns]
    if len(present) == 1:
        raise InputFileError(f"input {source} has a {present[0]} column but no "
                             f"{({*COORDINATES} - {present[0]}).pop()} column: give both or "
                             f"neither")
    rejects = Rejects([c for c in layout.columns if c in opened.columns])
    parts: list[Checked] = []
    places: list[np.ndarray] = []
    read = 0
    for chunk in opened.chunks([*layout.columns, *present]):
        checked = check_chunk(chunk.table, chunk.rows, layout, opened.typed)
        if not checked.accepted.all():
            bad = np.flatnonzero(~checked.accepted)
            rejects.add_rows(checked.rows[bad], checked.reasons[bad],
                             chunk.table.take(pa.array(bad)))
        if present:
            places.append(_coordinates(chunk.table, chunk.rows)[:, checked.accepted])
        parts.append(accepted_part(checked))
        read += chunk.table.num_rows
        progress("reading", chunk.done, opened.total)
    rejects.add_malformed(opened.malformed)
    read += len(opened.malformed)
    if not any(len(p.rows) for p in parts):
        raise InputFileError(f"input {source} has no valid transaction ({read} rows read)")
    rows = Rows.join(parts)
    rows.check_arrival_order(rows.codes("customer_id"))
    partitions, offsets = (np.concatenate(places, axis=1) if present
                           else np.stack(without_coordinates(len(rows))))
    transactions = TransactionBatch(
        rows.ids["customer_id"].to_pylist(), rows.ids["terminal_id"].to_pylist(),
        rows.timestamps, rows.amounts, partitions, offsets,
        rows.ids["transaction_id"].to_pylist())
    labels, later = _labels(rows)
    rejected = read - len(rows)
    written = None
    if rejected:
        writer = TableWriter(rejects_path, rejects.schema, "rejects file")
        writer.write(rejects.table())
        writer.commit()
        written = rejects_path
    return FileHistory(History(transactions, labels), read, rejected, later, bool(present),
                       written)


def _coordinates(table: pa.Table, rows: np.ndarray) -> np.ndarray:
    """(2, n) int64: each row's partition and offset, checked."""
    out = []
    for name in COORDINATES:
        column = table.column(name).combine_chunks()
        limit = NO_PARTITION if name == "partition" else 2**63 - 1
        try:
            values = column.cast(pa.int64()).fill_null(-1).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = np.array([_whole(v) for v in column.to_pylist()], dtype=np.int64)
        wrong = np.flatnonzero((values < 0) | (values >= limit))
        if wrong.size:
            raise InputFileError(
                f"row {rows[wrong[0]]}: {name} {column[int(wrong[0])].as_py()!r} is not a "
                f"whole number in 0..{limit - 1} (every row needs its partition and offset, "
                f"or no row has them)")
        out.append(values)
    return np.stack(out)


def _whole(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _labels(rows: Rows) -> tuple[LabelBatch, int]:
    """The usable fraud labels known by the history's end, and how many came later."""
    usable = rows.fraud.astype(bool)
    later = 0
    if rows.known_ms is not None:
        late = usable & (rows.known_ms > rows.timestamps.max())
        later = int(late.sum())
        usable &= ~late
    chosen = np.flatnonzero(usable)
    take = pa.array(chosen)
    return LabelBatch(rows.ids["transaction_id"].take(take).to_pylist(),
                      rows.ids["terminal_id"].take(take).to_pylist(),
                      rows.timestamps[chosen], np.ones(chosen.size, dtype=bool)), later
