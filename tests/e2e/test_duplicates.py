"""The same transaction produced twice end to end: a worker process reads a stream in
which some transactions come a second time, at another offset, right behind the first.
Each counts once in the state Redis is left with, its second decision is marked
``duplicate`` and counted, and every other decision equals the offline engine's over the
stream without the copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.e2e.cli import worker_process
from tests.e2e.faults import (
    judged,
    wrong_state,
)
from tests.kafka_helpers import make_topics, read_topic
from tests.metrics import scraped
from tests.population import recent

COPIES = 60


def with_copies(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame`` with each of ``rows`` produced a second time, right behind the first."""
    order = np.concatenate([np.arange(len(frame)), rows])
    rank = np.concatenate([np.arange(len(frame)), rows]).astype(np.float64)
    rank[len(frame):] += 0.5
    return frame.iloc[order[np.argsort(rank, kind="stable")]].reset_index(drop=True)


def test_parity_after_the_same_transaction_produced_twice(settings: Settings,
                                                          tmp_path: Path) -> None:
    metrics_port = services.free_port()
    settings = settings.replace(emit_features=True, metrics_port=metrics_port)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    rows = np.sort(np.random.default_rng(7).choice(len(frame), COPIES, replace=False))
    copied = {str(t) for t in frame["transaction_id"].iloc[rows]}
    stream = with_copies(frame, rows)
    with worker_process(settings, tmp_path) as worker:
        sent = produce_frame(settings, stream)
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        counted = scraped(metrics_port, "fraudstream_duplicate_transactions_total")
        assert worker.stop() == 0, worker.tail()
    by_id: dict[str, list[list[str]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        decision = decision_decoder.decode(record.value)
        by_id.setdefault(decision.transaction_id, []).append(decision.degraded)
    decisions, result, worst = judged(frame, records)
    marked = sum(1 for d in decisions if "duplicate" in d.degraded)
    result.report("same transaction produced twice", produced_twice=COPIES,
                  marked_duplicate=marked, largest_feature_difference=worst)
    assert sent == len(frame) + COPIES
    assert result.lost == 0 and result.duplicates == COPIES
    assert {t: d for t, d in by_id.items() if len(d) > 1} == {
        t: [[], ["duplicate"]] for t in copied}, "the second decision, and only it, marked"
    assert marked == COPIES and counted == {"": float(COPIES)}
    assert wrong_state(settings, frame) == [], "a copy was counted"
    assert worst <= 1e-9, "a decision was scored on state holding a copy"
