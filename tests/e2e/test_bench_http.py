"""The HTTP benchmark measures a real `fraudstream serve` from a second process."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.bench.http_serving import Scenario, measure_http
from fraudstream.settings import Settings


@pytest.mark.slow
def test_http_section_measures_the_server_and_the_bare_scorer(settings: Settings,
                                                              model_registry: Path) -> None:
    plan = [Scenario("one transaction", 1, 2, 60), Scenario("batch of 100", 100, 1, 5)]
    results = measure_http(settings, quick=True, plan=plan, registry=model_registry,
                           customers=300)
    assert [(r.scenario, r.requests, r.errors) for r in results] == [
        ("one transaction", 60, 0), ("batch of 100", 5, 0)]
    for r in results:
        assert r.requests_per_s > 0
        assert r.transactions_per_s == pytest.approx(r.requests_per_s
                                                     * r.transactions_per_request)
        assert 0 < r.http_p50_ms <= r.http_p99_ms
        assert 0 < r.bare_p50_ms <= r.bare_p99_ms
