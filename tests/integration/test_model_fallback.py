"""A model that fails mid-stream: the rules decide, and every such decision says so."""

from __future__ import annotations

import numpy as np

from fraudstream.models.rules import MODEL_DEGRADED, RULES_VERSION
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import recent


def _broken_model(matrix: np.ndarray) -> np.ndarray:
    raise RuntimeError("the compiled library returned garbage")


def _nan_model(matrix: np.ndarray) -> np.ndarray:
    return np.full(matrix.shape[0], np.nan)


def test_a_failing_model_falls_back_to_rules_flagged_and_counted(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    frame = simulate(recent(2))
    half = len(frame) // 2
    with running_worker(settings) as worker:
        worker.scorer._probability = _broken_model
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.2)
        worker.scorer._probability = _nan_model
        produce_frame(settings, frame.iloc[half:])
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             settle=0.5)
        fallbacks = worker.metrics.degraded.labels(MODEL_DEGRADED)._value.get()
    decisions = [decision_decoder.decode(r.value) for r in records]
    assert len({d.transaction_id for d in decisions}) == len(frame) == len(decisions)
    assert all(d.degraded == [MODEL_DEGRADED] for d in decisions)
    assert all(d.model_version == RULES_VERSION for d in decisions)
    assert all(0.0 <= d.score <= 1.0 for d in decisions)
    assert fallbacks == len(frame)
    big = frame["amount"].to_numpy() > 220  # the high-amount rule declines these
    assert big.any()
    declined = {d.transaction_id for d in decisions if d.decision == "decline"}
    assert {str(t) for t in frame["transaction_id"][big]} <= declined
