"""fraudstream.top: rates and percentiles from two scrapes of real worker metrics."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from fraudstream import top
from fraudstream.stream.metrics import WorkerMetrics


def scrape_of(registries: list[CollectorRegistry], at: float) -> top.Snapshot:
    snapshot = top.Snapshot(at, workers=len(registries), workers_up=len(registries))
    for registry in registries:
        top.parse(generate_latest(registry).decode(), snapshot)
    return snapshot


def test_rates_and_percentiles_between_two_scrapes_summed_over_workers() -> None:
    registries = [CollectorRegistry(), CollectorRegistry()]
    metrics = [WorkerMetrics.create(r) for r in registries]
    for m in metrics:
        m.events.inc(1000)  # before the first scrape: must not count
        m.model_info.info({"version": "v1", "backend": "compiled", "fallback": "none"})
    before = scrape_of(registries, at=10.0)
    for m in metrics:
        m.events.inc(500)
        m.decisions.labels("approve").inc(480)
        m.decisions.labels("decline").inc(20)
        m.event_seconds.observe(0.0008, 495)  # 99% of events within 0.75..1 ms
        m.event_seconds.observe(0.004, 5)
        m.stage_seconds.labels("score").observe(0.0001)
        m.consumer_lag.labels("tx", "0").set(7)
    after = scrape_of(registries, at=12.0)
    figures = top.figures(before, after)
    assert figures.events_per_s == pytest.approx(500.0)  # 1000 events over 2 s
    assert figures.decisions_per_s == {"approve": pytest.approx(480.0),
                                       "decline": pytest.approx(20.0)}
    p50, p99 = figures.in_worker_ms
    assert p50 is not None and 0.75 < p50 <= 1.0
    assert p99 is not None and 0.75 < p99 <= 1.0
    assert figures.stage_us_per_batch["score"] == pytest.approx(100.0)
    assert figures.stage_us_per_batch["decode"] is None
    assert figures.lag == {"tx[0]": 14.0}
    assert figures.model == "v1"
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(top.render(figures))
    view = console.export_text()
    assert "2/2 workers up, model v1" in view and "events/s" in view and "500" in view


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    def buckets(counts: list[tuple[str, float]]) -> dict[top.Labels, float]:
        return {(("le", le),): c for le, c in counts}

    before = buckets([("0.001", 0), ("0.002", 0), ("+Inf", 0)])
    after = buckets([("0.001", 50), ("0.002", 100), ("+Inf", 100)])
    assert top.quantile(0.5, before, after) == pytest.approx(0.001)
    assert top.quantile(0.75, before, after) == pytest.approx(0.0015)
    assert top.quantile(0.5, after, after) is None  # nothing observed in between


def test_workers_from_urls_and_ports() -> None:
    assert top.workers_from(["http://h:9/"], [9100]) == [
        "http://h:9/metrics", "http://127.0.0.1:9100/metrics"]
