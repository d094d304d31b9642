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

from fraudstream.batch.files import InputFileError, TableWriter
from fraudstream.batch.plan import Plan, make_plan
from fraudstream.batch.rejects import Rejects
from fraudstream.batch.rows import Rows, accepted_part
from fraudstream.batch.validate import check_chunk
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.models.artifact import Artifact
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.rules import MODEL_DEGRADED, RulesScorer
from fraudstream.models.scorer import Scorer
from fraudstream.stream.core import decide_matrix

SCORE_ROWS = 65_536
DECISION_SCHEMA = pa.schema([
    ("transaction_id", pa.string()), ("customer_id", pa.string()), ("score", pa.float64()),
    ("decision", pa.string()), ("model_version", pa.string()),
    ("reasons", pa.list_(pa.string())), ("degraded", pa.list_(pa.string())),
])
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


def _features(rows: Rows, sort_by_time: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature matrix in scoring order, and the inverse order (None: file order)."""
    customers, terminals = rows.codes("customer_id"), rows.codes("terminal_id")
    order = np.argsort(rows.timestamps, kind="stable") if sort_by_time else None
    if order is None:
        rows.check_arrival_order(customers)
    rows.drop_duplicate_frauds(terminals)

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


def _decisions(scorer: Scorer, rules: RulesScorer, matrix: np.ndarray, rows: Rows,
               start: int, stop: int, summary: Summary) -> pa.Table:
    decided = decide_matrix(scorer, rules, matrix)
    if MODEL_DEGRADED in decided.degraded:
        summary.rules_rows += stop - start
    decisions = np.asarray(OUTCOMES, dtype=object)[np.asarray(decided.codes, dtype=np.int64)]
    summary.outcomes.update(Counter(decisions.tolist()))
    n = stop - start
    return pa.table({
        "transaction_id": rows.ids["transaction_id"][start:stop],
        "customer_id": rows.ids["customer_id"][start:stop],
        "score": pa.array(np.asarray(decided.scores, dtype=np.float64)),
        "decision": pa.array(decisions, pa.string()),
        "model_version": pa.array([decided.model_version] * n, pa.string()),
        "reasons": pa.array(decided.reasons, pa.list_(pa.string())),
        "degraded": pa.array([decided.degraded] * n, pa.list_(pa.string())),
    }, schema=DECISION_SCHEMA)


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
    rejects = Rejects([c for c in layout.columns if c in opened.columns])
    parts = []
    for chunk in opened.chunks(layout.columns):
        checked = check_chunk(chunk.table, chunk.rows, layout, opened.typed)
        if not checked.accepted.all():
            bad = np.flatnonzero(~checked.accepted)
            rejects.add_rows(checked.rows[bad], checked.reasons[bad],
                             chunk.table.take(pa.array(bad)))
        parts.append(accepted_part(checked))
        summary.rows += chunk.table.num_rows
        progress("reading", chunk.done, opened.total)
    progress("reading", opened.total, opened.total)
    rejects.add_malformed(opened.malformed)
    summary.rows += len(opened.malformed)
    if summary.rows == 0:
        raise InputFileError(f"input {opened.path} has no rows")

    rows = Rows.join(parts) if any(len(p.rows) for p in parts) else None
    writers = [TableWriter(plan.output, DECISION_SCHEMA, "output")]
    try:
        if rows is not None:
            _score_rows(rows, scorer, plan.sort_by_time, writers[0], summary, progress)
            ignored = rows.ignored_labels()
            summary.labels_ignored = len(ignored)
            rejects.add_labels(rows.rows[ignored], rows.label_reasons[ignored],
                               {k: v.take(pa.array(ignored)) for k, v in rows.ids.items()})
        writers.append(TableWriter(plan.rejects, rejects.schema, "rejects file"))
        writers[1].write(rejects.table())
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    summary.rejected = summary.rows - summary.scored
    summary.seconds = time.perf_counter() - started
    return summary


def _score_rows(rows: Rows, scorer: Scorer, sort_by_time: bool, writer: TableWriter,
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
