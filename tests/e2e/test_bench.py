"""The benchmark harness measures real processes on a real broker (small, fast runs)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fraudstream.bench.pipeline import Implementation, measure_backlog, measure_paced, produce_frame
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.topics import create_topics
from tests.e2e.cli import run_cli
from tests.population import recent

PASSTHROUGH = Implementation("passthrough", [sys.executable, "-m", "fraudstream.bench.passthrough"])


def test_backlog_and_paced_measurements_of_a_real_process(settings: Settings,
                                                          tmp_path: Path) -> None:
    frame = simulate(recent(6, seed=4)).iloc[:3001]
    assert len(frame) == 3001
    source = settings.topic_transactions
    create_topics(settings, 4)  # the harness creates its topics with 4 partitions
    produce_frame(settings, source, frame.iloc[1:])
    backlog = measure_backlog(PASSTHROUGH, settings, source, 3000, tmp_path, timeout=60)
    assert backlog.events == 3000, backlog.note
    assert backlog.rate > 0
    assert backlog.peak_rss_mb is not None and backlog.peak_rss_mb > 10
    e2e50, e2e99, _, _ = measure_paced(PASSTHROUGH, settings, frame.iloc[:400], 200.0,
                                       tmp_path, timeout=60)
    assert e2e50 is not None and e2e99 is not None
    assert 0 <= e2e50 <= e2e99 < 10_000


def test_memory_section_writes_its_results(tmp_path: Path) -> None:
    result = run_cli(None, "bench", "--quick", "--only", "memory", "--out", str(tmp_path),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "memory.json").read_text())
    assert data["customers"] == 100_000
    assert 177 <= data["bytes_per_customer"] <= 300
    assert data["measured"]["cores"] == os.cpu_count() and data["measured"]["at"]
    heading, table = (tmp_path / "memory.md").read_text().split("\n\n", 1)
    assert heading.startswith("_Measured ") and data["measured"]["at"] in heading
    assert table.startswith("| entity |")


def test_stage_breakdown_accounts_for_the_drain(settings: Settings) -> None:
    from fraudstream.bench.stages import measure_stages

    report = measure_stages(settings, 3000, recent(6, seed=4))
    assert report.events == 3000
    stages = report.micros_per_event
    assert {"decode", "features", "score", "produce", "update"} <= set(stages)
    assert all(value > 0 for name, value in stages.items() if name != "update_wait")
    assert abs(sum(stages.values()) - report.seconds / report.events * 1e6) < 1e-6


def test_batch_costs_are_measured_on_real_batches(redis_url: str, model_registry: Path) -> None:
    from fraudstream.bench.batch_cost import measure_batch_costs
    from fraudstream.models.registry import Registry
    from fraudstream.models.scorer import load_scorer

    scorer = load_scorer(Registry(model_registry).load_champion())
    frame = simulate(recent(6, seed=4))
    costs = measure_batch_costs(redis_url, scorer, frame, sizes=(1, 16), batches=20,
                                warm_events=512)
    assert [c.size for c in costs] == [1, 16]
    for cost in costs:
        assert min(cost.fetch_us, cost.score_us, cost.update_us) > 0
        assert cost.per_event_us == cost.total_us / cost.size


def test_delivery_modes_drain_the_same_backlog(settings: Settings, model_registry: Path,
                                               tmp_path: Path) -> None:
    from fraudstream.bench.delivery import measure_delivery, write_delivery

    runs = measure_delivery(settings, simulate(recent(6, seed=4)).iloc[:2000],
                            model_registry, rounds=1)
    assert [run.mode for run in runs] == ["at-least-once", "exactly-once, 100 ms transactions",
                                          "exactly-once, one transaction per batch"]
    assert all(run.events == 2000 and run.seconds > 0 for run in runs)
    at_least_once, interval, per_batch = runs
    assert at_least_once.commits == 0 and interval.commits >= 1
    assert per_batch.commits >= interval.commits and per_batch.commit_seconds > 0
    write_delivery(tmp_path, runs, 1)
    heading, table = (tmp_path / "delivery.md").read_text().split("\n\n", 1)
    assert heading.startswith("_Measured ") and table.startswith("| delivery |")
