"""The quality monitor joins a worker's real decisions with the labels that follow them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import label_message, produce_frame
from fraudstream.stream.decisions import Decision, decision_decoder, encode_decision
from fraudstream.stream.metrics import QualityMetrics
from fraudstream.stream.monitor import QualityMonitor, live_quality
from fraudstream.stream.quality import LiveQuality
from fraudstream.stream.quality_store import RedisLiveQuality
from tests.kafka_helpers import make_topics, produce_raw, read_topic, running_worker
from tests.population import recent
from tests.waiting import wait_for


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
    def all_labelled() -> bool:
        monitor.report()
        return registry.get_sample_value("fraudstream_live_labelled") == len(frame)

    try:
        wait_for(all_labelled, "every decision labelled", 60, 0.2)
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


class CountingLive(RedisLiveQuality):
    """Counts the decisions the monitor hands over, to show which came from Redis."""

    decisions_seen = 0

    def add(self, decisions: Iterable[tuple[str, float, bool, str]],
            labels: Iterable[tuple[str, bool]]) -> int:
        decisions = list(decisions)
        self.decisions_seen += len(decisions)
        return super().add(decisions, labels)


def _run_until(monitor: QualityMonitor, done: Callable[[], bool]) -> None:
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    def reported() -> bool:
        monitor.report()
        return done()

    try:
        wait_for(reported, "the monitor's figures", 60, 0.2)
    finally:
        monitor.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_the_join_survives_a_restart_of_the_monitor(settings: Settings) -> None:
    """Decisions read by one monitor, labels by the next: the pairs meet in Redis."""
    make_topics(settings, partitions=2)
    now_ms = int(time.time() * 1000)
    rows = [(i, 0.05 + 0.9 * ((i * 37) % 100) / 100, i % 3 == 0, f"v{i % 2}")
            for i in range(200)]
    produce_raw(settings, settings.topic_decisions, [(str(i % 7).encode(), encode_decision(
        Decision(transaction_id=str(i), customer_id=str(i % 7), score=score,
                 decision="decline" if score > 0.5 else "approve", model_version=version,
                 reasons=[], degraded=[], scored_at=now_ms, latency_ms=0.1)))
        for i, score, _, version in rows])
    live = live_quality(settings, window=1000, max_decisions=10, horizon_days=1)
    assert isinstance(live, RedisLiveQuality)
    client = redis.Redis.from_url(settings.redis_url)
    pending = f"{settings.redis_prefix}:q:d:*"
    first = QualityMonitor(settings, QualityMetrics.create(CollectorRegistry()), live)
    _run_until(first, lambda: len(list(client.scan_iter(pending, count=1000))) == len(rows))
    assert len(list(client.scan_iter(pending, count=1000))) == len(rows)

    produce_raw(settings, settings.topic_labels, [
        (str(i % 7).encode(), label_message((i, now_ms, i % 7, 1, int(fraud)), now_ms))
        for i, _, fraud, _ in rows])
    registry = CollectorRegistry()
    client_live = CountingLive(client, horizon_days=1, window=1000,
                               prefix=f"{settings.redis_prefix}:q:")
    second = QualityMonitor(settings, QualityMetrics.create(registry), client_live)

    def labelled(version: str) -> float | None:
        return registry.get_sample_value("fraudstream_live_model_labelled",
                                         {"version": version})

    _run_until(second, lambda: labelled("v0") == 100 and labelled("v1") == 100)
    assert client_live.decisions_seen == 0  # every decision came from Redis
    for version in ("v0", "v1"):
        mine = [(score > 0.5, fraud) for i, score, fraud, v in rows if v == version]
        flagged = np.array([f for f, _ in mine])
        fraud = np.array([y for _, y in mine])
        assert labelled(version) == 100
        precision = registry.get_sample_value("fraudstream_live_model_quality",
                                              {"version": version, "measure": "precision"})
        recall = registry.get_sample_value("fraudstream_live_model_quality",
                                           {"version": version, "measure": "recall"})
        assert precision == pytest.approx((flagged & fraud).sum() / flagged.sum())
        assert recall == pytest.approx((flagged & fraud).sum() / fraud.sum())
    assert list(client.scan_iter(pending, count=1000)) == []


class FailingLive(RedisLiveQuality):
    """A join that fails, as a monitor killed or cut off from Redis mid-batch."""

    def add(self, decisions: Iterable[tuple[str, float, bool, str]],
            labels: Iterable[tuple[str, bool]]) -> int:
        raise redis.ConnectionError("Redis went away mid-batch")


def test_records_a_monitor_could_not_join_are_read_again_by_the_next(
        settings: Settings) -> None:
    """Offsets are committed only after the join: what a failed monitor read, the next one
    reads again, and joins once."""
    make_topics(settings, partitions=2)
    now_ms = int(time.time() * 1000)
    produce_raw(settings, settings.topic_decisions, [(b"c", encode_decision(
        Decision(transaction_id=str(i), customer_id="c", score=0.9, decision="decline",
                 model_version="v1", reasons=[], degraded=[], scored_at=now_ms,
                 latency_ms=0.1))) for i in range(50)])
    produce_raw(settings, settings.topic_labels, [
        (b"c", label_message((i, now_ms, 0, 1, 1), now_ms)) for i in range(50)])
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"{settings.redis_prefix}:q:"
    failing = QualityMonitor(settings, QualityMetrics.create(CollectorRegistry()),
                             FailingLive(client, horizon_days=1, prefix=prefix))
    with pytest.raises(redis.ConnectionError):
        failing.run()  # the first batch fails; close() commits nothing it did not join
    registry = CollectorRegistry()
    second = QualityMonitor(settings, QualityMetrics.create(registry),
                            RedisLiveQuality(client, horizon_days=1, prefix=prefix))
    _run_until(second, lambda: registry.get_sample_value(
        "fraudstream_live_model_labelled", {"version": "v1"}) == 50)
    assert second.live.unmatched_labels == 0
