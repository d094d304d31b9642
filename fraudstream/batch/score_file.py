"""Score a file of transactions as the stream would have: same rules, features, model.

The file's rows are the stream's events in arrival order. Each accepted row is scored
with the offline feature engine (equal to the online one value for value) and the
model's ``Scorer``, with the rules fallback of the worker, and gets one output row with
the decision event's fields. Labels in the file (see ``validate``) count into terminal
risk as the worker counts labels it has read: from ``label_time`` on when the file has
one, otherwise by the label delay (every label of day d known before day d + 7).
Rejected rows, and labels that are ignored, go to a rejects file with the reason.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.definitions import FEATURE_NAMES
from features.offline import compute_matrix
from fraudstream.batch.files import InputFileError, TableWriter
from fraudstream.batch.plan import Plan, make_plan
from fraudstream.batch.validate import Checked, Layout, check_chunk
from models.artifact import Artifact
from models.decisions import OUTCOMES
from models.rules import RULES_VERSION, RulesScorer, score_with_fallback
from models.scorer import Scorer

SCORE_ROWS = 65_536
MODEL_DEGRADED = "model"  # as stream.worker says it
DECISION_SCHEMA = pa.schema([
    ("transaction_id", pa.string()), ("customer_id", pa.string()), ("score", pa.float64()),
    ("decision", pa.string()), ("model_version", pa.string()),
    ("reasons", pa.list_(pa.string())), ("degraded", pa.list_(pa.string())),
])
DUPLICATE_LABEL = "label ignored: this transaction's fraud label was already counted"
Progress = Callable[[str, float, float | None], None]
"""(stage, done, total or None): stages are "reading", "features" and "scoring"."""


@dataclass
class Summary:
    """What a run read, scored, rejected and wrote."""

    output: Path
    rejects: Path
    model_version: str
    backend: str
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    labels: int = 0
    frauds: int = 0
    labels_ignored: int = 0
    rules_rows: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Accepted:
    """The accepted rows of every chunk, and the rows and labels turned away."""

    parts: list[Checked] = field(default_factory=list)
    rejected: list[tuple[np.ndarray, np.ndarray, pa.Table | None]] = field(default_factory=list)

    def add(self, checked: Checked, table: pa.Table) -> None:
        accepted = checked.accepted
        if not accepted.all():
            bad = np.flatnonzero(~accepted)
            self.rejected.append((checked.rows[bad], checked.reasons[bad],
                                  table.take(pa.array(bad))))
        self.parts.append(_subset(checked, accepted))


def _subset(checked: Checked, keep: np.ndarray) -> Checked:
    take = pa.array(np.flatnonzero(keep))
    return Checked(
        checked.rows[keep], checked.reasons[keep],
        {k: v.take(take) for k, v in checked.ids.items()}, checked.timestamps[keep],
        checked.amounts[keep], checked.fraud[keep], checked.labelled[keep],
        None if checked.known_ms is None else checked.known_ms[keep],
        checked.label_reasons[keep])


@dataclass
class _Rows:
    """Accepted rows of the whole file, as columns."""

    rows: np.ndarray
    ids: dict[str, pa.Array]
    timestamps: np.ndarray
    amounts: np.ndarray
    fraud: np.ndarray
    labelled: np.ndarray
    known_ms: np.ndarray | None
    label_reasons: np.ndarray

    @classmethod
    def join(cls, parts: list[Checked], layout: Layout) -> _Rows:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(cat("rows"),
                   {k: pa.concat_arrays([p.ids[k] for p in parts]) for k in parts[0].ids},
                   cat("timestamps"), cat("amounts"), cat("fraud"), cat("labelled"),
                   cat("known_ms") if layout.label_times else None, cat("label_reasons"))

    def __len__(self) -> int:
        return len(self.rows)

    def codes(self, name: str) -> np.ndarray:
        return self.ids[name].dictionary_encode().indices.to_numpy().astype(np.int64)


def _drop_duplicate_frauds(rows: _Rows, terminals: np.ndarray) -> None:
    """A worker counts a fraud label once per transaction id at its terminal: keep the
    first known, ignore the others."""
    frauds = np.flatnonzero(rows.fraud)
    if frauds.size < 2:
        return
    tx = rows.ids["transaction_id"].take(pa.array(frauds)).dictionary_encode().indices
    key = terminals[frauds] * (len(frauds) + 1) + tx.to_numpy().astype(np.int64)
    order = (np.argsort(rows.known_ms[frauds], kind="stable") if rows.known_ms is not None
             else np.arange(frauds.size))
    _, first = np.unique(key[order], return_index=True)
    keep = np.zeros(frauds.size, dtype=bool)
    keep[order[first]] = True
    duplicates = frauds[~keep]
    rows.fraud[duplicates] = 0
    rows.labelled[duplicates] = False
    rows.label_reasons[duplicates] = DUPLICATE_LABEL


def _check_arrival_order(rows: _Rows, customers: np.ndarray) -> None:
    """The feature windows need each customer's transactions in time order."""
    order = np.argsort(customers, kind="stable")
    c, t = customers[order], rows.timestamps[order]
    back = np.flatnonzero((c[1:] == c[:-1]) & (t[1:] < t[:-1]))
    if back.size:
        first = int(order[1:][back].min())
        customer = rows.ids["customer_id"][first].as_py()
        raise InputFileError(
            f"row {rows.rows[first]}: customer {customer}'s timestamp is earlier than their "
            f"previous transaction's; rows must be in arrival order (or pass --sort-by-time)")


def _features(rows: _Rows, sort_by_time: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature matrix in scoring order, and the inverse order (None: file order)."""
    customers, terminals = rows.codes("customer_id"), rows.codes("terminal_id")
    order = np.argsort(rows.timestamps, kind="stable") if sort_by_time else None
    if order is None:
        _check_arrival_order(rows, customers)
    _drop_duplicate_frauds(rows, terminals)

    def arranged(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    frame = pd.DataFrame({"timestamp": arranged(rows.timestamps),
                          "customer_id": arranged(customers),
                          "terminal_id": arranged(terminals),
                          "amount": arranged(rows.amounts),
                          "is_fraud": arranged(rows.fraud)})
    known = None if rows.known_ms is None else arranged(rows.known_ms)
    matrix = compute_matrix(frame, label_known_ms=known)
    if order is None:
        return matrix, None
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return matrix, inverse


def _decisions(scorer: Scorer, rules: RulesScorer, matrix: np.ndarray, rows: _Rows,
               start: int, stop: int, summary: Summary) -> pa.Table:
    scored, fell_back = score_with_fallback(scorer, rules, matrix)
    version, degraded = scorer.version, []
    if fell_back:
        version, degraded = RULES_VERSION, [MODEL_DEGRADED]
        summary.rules_rows += stop - start
    decisions = np.asarray(OUTCOMES, dtype=object)[scored.codes]
    summary.outcomes.update(Counter(decisions.tolist()))
    n = stop - start
    return pa.table({
        "transaction_id": rows.ids["transaction_id"][start:stop],
        "customer_id": rows.ids["customer_id"][start:stop],
        "score": pa.array(np.asarray(scored.scores, dtype=np.float64)),
        "decision": pa.array(decisions, pa.string()),
        "model_version": pa.array([version] * n, pa.string()),
        "reasons": pa.array(scored.reasons, pa.list_(pa.string())),
        "degraded": pa.array([degraded] * n, pa.list_(pa.string())),
    }, schema=DECISION_SCHEMA)


def _rejects_table(accepted: _Accepted, rows: _Rows | None, malformed: list[tuple[int, str]],
                   text_columns: list[str]) -> pa.Table:
    """One row per rejected row or ignored label: its row number, whether its
    transaction was scored, the reason, and its values as text."""
    parts = []
    for numbers, reasons, table in accepted.rejected:
        parts.append(_reject_part(numbers, reasons, False, table, text_columns))
    if malformed:
        numbers = np.array([m[0] for m in malformed], dtype=np.int64)
        parts.append(_reject_part(numbers, np.array([m[1] for m in malformed], dtype=object),
                                  False, None, text_columns))
    if rows is not None:
        ignored = np.flatnonzero(np.not_equal(rows.label_reasons, None))
        if ignored.size:
            parts.append(_reject_part(rows.rows[ignored], rows.label_reasons[ignored], True,
                                      None, text_columns, rows, ignored))
    schema = pa.schema([("row", pa.int64()), ("scored", pa.bool_()), ("reason", pa.string()),
                        *((c, pa.string()) for c in text_columns)])
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables([p.cast(schema) for p in parts])
    return table.take(pa.array(np.argsort(table.column("row").to_numpy(), kind="stable")))


def _reject_part(numbers: np.ndarray, reasons: np.ndarray, scored: bool,
                 table: pa.Table | None, text_columns: list[str], rows: _Rows | None = None,
                 where: np.ndarray | None = None) -> pa.Table:
    n = len(numbers)
    columns: dict[str, pa.Array] = {
        "row": pa.array(numbers, pa.int64()), "scored": pa.array([scored] * n, pa.bool_()),
        "reason": pa.array(reasons.tolist(), pa.string())}
    for name in text_columns:
        if table is not None and name in table.column_names:
            columns[name] = _as_text(table.column(name).combine_chunks())
        elif rows is not None and where is not None and name in rows.ids:
            columns[name] = rows.ids[name].take(pa.array(where))
        else:
            columns[name] = pa.nulls(n, pa.string())
    return pa.table(columns)


def _as_text(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        return column.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())


def score_file(source: Path, output: Path, artifact: Artifact, rejects: Path | None = None,
               use_labels: bool = True, sort_by_time: bool = False,
               progress: Progress = lambda *_: None) -> Summary:
    """Score every row of ``source`` into ``output`` (Parquet or CSV by extension); rows
    and labels turned away go to ``rejects`` (default: ``<output>.rejects.<ext>``)."""
    return score_plan(make_plan(source, output, rejects, use_labels, sort_by_time), artifact,
                      progress)


def score_plan(plan: Plan, artifact: Artifact, progress: Progress = lambda *_: None,
               ) -> Summary:
    """Carry out a checked plan with ``artifact``'s model."""
    started = time.perf_counter()
    scorer = Scorer(artifact, FEATURE_NAMES)
    summary = Summary(plan.output, plan.rejects, scorer.version, scorer.backend)
    opened, layout = plan.source, plan.layout
    text_columns = [c for c in layout.columns if c in opened.columns]

    accepted = _Accepted()
    for chunk in opened.chunks(layout.columns):
        accepted.add(check_chunk(chunk.table, chunk.rows, layout, opened.typed), chunk.table)
        summary.rows += chunk.table.num_rows
        progress("reading", chunk.done, opened.total)
    progress("reading", opened.total, opened.total)
    malformed = [(m.row, m.reason) for m in opened.malformed]
    summary.rows += len(malformed)
    if summary.rows == 0:
        raise InputFileError(f"input {opened.path} has no rows")

    rows = _Rows.join(accepted.parts, layout) if any(len(p.rows) for p in accepted.parts) \
        else None
    writers = [TableWriter(plan.output, DECISION_SCHEMA, "output")]
    try:
        if rows is not None:
            _score_rows(rows, scorer, plan.sort_by_time, writers[0], summary, progress)
        rejected = _rejects_table(accepted, rows, malformed, text_columns)
        writers.append(TableWriter(plan.rejects, rejected.schema, "rejects file"))
        writers[1].write(rejected)
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    summary.rejected = summary.rows - summary.scored
    summary.labels_ignored = int(np.count_nonzero(
        np.not_equal(rows.label_reasons, None))) if rows is not None else 0
    summary.seconds = time.perf_counter() - started
    return summary


def _score_rows(rows: _Rows, scorer: Scorer, sort_by_time: bool, writer: TableWriter,
                summary: Summary, progress: Progress) -> None:
    progress("features", 0, None)
    matrix, inverse = _features(rows, sort_by_time)
    summary.labels = int(rows.labelled.sum())
    summary.frauds = int(rows.fraud.sum())
    progress("features", 1, 1)
    rules = RulesScorer()
    n = len(rows)
    with _without_cycle_collection():
        for start in range(0, n, SCORE_ROWS):
            stop = min(n, start + SCORE_ROWS)
            block = matrix[start:stop] if inverse is None else matrix[inverse[start:stop]]
            writer.write(_decisions(scorer, rules, block, rows, start, stop, summary))
            summary.scored = stop
            progress("scoring", stop, n)


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Scoring makes millions of small lists (the reasons), none in a cycle: each would
    count towards a collection that walks every live object. Reference counting frees
    them all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
