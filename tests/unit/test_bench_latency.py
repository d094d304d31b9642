"""The benchmark's in-worker latency (bench.pipeline): for the fraudstream worker, its own
``fraudstream_event_latency_seconds`` histogram between two scrapes, not the decisions'
``latency_ms``; for a peer without the histogram, the decisions'."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from fraudstream.bench.pipeline import _in_worker
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.top import Snapshot, parse


def scrape(registry: CollectorRegistry) -> Snapshot:
    snapshot = Snapshot(time.monotonic(), workers=1, workers_up=1)
    parse(generate_latest(registry).decode(), snapshot)
    return snapshot


def test_the_workers_histogram_between_two_scrapes_is_what_counts() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.event_seconds.observe(0.050)  # the warm-up event: before the first scrape
    before = scrape(registry)
    metrics.event_seconds.observe(0.00035, 98)  # one batch of 98 events
    metrics.event_seconds.observe(0.0028, 2)
    after = scrape(registry)
    # The decisions would say otherwise: they are not read when the histogram is there.
    decisions: list[dict[str, object]] = [{"latency_ms": 40.0}] * 100
    p50, p99 = _in_worker(before, after, decisions)
    assert p50 is not None and 0.3 < p50 <= 0.4
    assert p99 is not None and 2.0 < p99 <= 3.0
    assert _in_worker(None, after, decisions)[1] == _in_worker(Snapshot(0.0), after, [])[1]
    assert _in_worker(None, after, [])[1] is not None and \
        _in_worker(None, after, [])[1] != p99, "without the first scrape the warm-up counts"


def test_a_peer_without_the_histogram_reports_its_decisions_latency() -> None:
    decisions: list[dict[str, object]] = [{"latency_ms": float(i)} for i in range(1, 101)]
    p50, p99 = _in_worker(None, None, decisions)
    assert p50 == 50.5
    assert p99 is not None and 99.0 < p99 < 100.0
