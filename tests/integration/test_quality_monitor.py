"""The quality monitor joins a worker's real decisions with the labels that follow them."""

from __future__ import annotations

import threading
import time

import numpy as np
from prometheus_client import CollectorRegistry

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import label_message, produce_frame
from stream.decisions import decision_decoder
from stream.metrics import QualityMetrics
from stream.monitor import QualityMonitor
from stream.quality import LiveQuality
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.population import recent


def test_live_quality_matches_the_decisions_and_labels(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    frame = simulate(recent(6))
    produce_frame(settings, frame)
    with running_worker(settings):
        records = read_topic(settings, settings.topic_decisions, expect=len(frame))
    flagged = {d.transaction_id: d.decision != "approve"
               for d in (decision_decoder.decode(r.value) for r in records)}
    now_ms = int(time.time() * 1000)
    rows = zip(frame["transaction_id"], frame["timestamp"], frame["customer_id"],
               frame["terminal_id"], frame["is_fraud"], strict=True)
    produce_raw(settings, settings.topic_labels,
                [(str(row[2]).encode(), label_message(row, now_ms)) for row in rows])

    registry = CollectorRegistry()
    monitor = QualityMonitor(settings, QualityMetrics.create(registry),
                             LiveQuality(window=len(frame)))
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            monitor.report()
            if registry.get_sample_value("fraudstream_live_labelled") == len(frame):
                break
            time.sleep(0.2)
    finally:
        monitor.stop()
        thread.join(10)
    fraud = frame["is_fraud"].to_numpy().astype(bool)
    caught = np.array([flagged[str(t)] for t in frame["transaction_id"]])
    assert registry.get_sample_value("fraudstream_live_labelled") == len(frame)
    assert fraud.any() and caught.any()
    precision = registry.get_sample_value("fraudstream_live_quality",
                                          {"measure": "precision"})
    recall = registry.get_sample_value("fraudstream_live_quality", {"measure": "recall"})
    assert precision == (caught & fraud).sum() / caught.sum()
    assert recall == (caught & fraud).sum() / fraud.sum()
    average = registry.get_sample_value("fraudstream_live_quality",
                                        {"measure": "average_precision"})
    assert 0.0 < average <= 1.0
