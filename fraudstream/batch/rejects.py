"""The rejects file: rows turned away and labels ignored, each with its reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fraudstream.batch.files import MalformedRow


class Rejects:
    """Collected while a file is scored; ``table`` gives one row per rejected row or
    ignored label: its row number, whether its transaction was scored, the reason, and
    the row's values as text."""

    def __init__(self, text_columns: list[str]) -> None:
        self._columns = text_columns
        self._parts: list[pa.Table] = []

    def add_rows(self, numbers: np.ndarray, reasons: np.ndarray, values: pa.Table) -> None:
        """Rows not scored, with their values as read."""
        self._parts.append(self._part(numbers, reasons, False, {
            name: _as_text(values.column(name).combine_chunks())
            for name in self._columns if name in values.column_names}))

    def add_malformed(self, rows: list[MalformedRow]) -> None:
        """CSV lines that could not be split into the header's columns."""
        if rows:
            self._parts.append(self._part(np.array([r.row for r in rows], dtype=np.int64),
                                          np.array([r.reason for r in rows], dtype=object),
                                          False, {}))

    def add_labels(self, numbers: np.ndarray, reasons: np.ndarray,
                   ids: dict[str, pa.Array]) -> None:
        """Rows scored without their label: the ids say which."""
        if len(numbers):
            self._parts.append(self._part(numbers, reasons, True, ids))

    def _part(self, numbers: np.ndarray, reasons: np.ndarray, scored: bool,
              values: dict[str, pa.Array]) -> pa.Table:
        n = len(numbers)
        columns = {"row": pa.array(numbers, pa.int64()),
                   "scored": pa.array(np.full(n, scored), pa.bool_()),
                   "reason": pa.array(reasons.tolist(), pa.string())}
        for name in self._columns:
            columns[name] = values.get(name, pa.nulls(n, pa.string()))
        return pa.table(columns, schema=self.schema)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([("row", pa.int64()), ("scored", pa.bool_()), ("reason", pa.string()),
                          *((c, pa.string()) for c in self._columns)])

    def table(self) -> pa.Table:
        """Every part, in row order."""
        if not self._parts:
            return self.schema.empty_table()
        table = pa.concat_tables(self._parts)
        return table.take(pa.array(np.argsort(table.column("row").to_numpy(), kind="stable")))


def _as_text(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        return column.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
