"""Where a worker's time goes: it drains a backlog in this process, and its own stage
histograms give the microseconds per event of each stage."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraudstream import services
from fraudstream.bench.batch_cost import FIXED_COST_SIZE, LARGE_SIZE, BatchCost, measure_batch_costs
from fraudstream.bench.pipeline import isolated
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import load_scorer
from fraudstream.models.train import train
from fraudstream.settings import Settings
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.app import build_worker
from fraudstream.stream.worker import Worker
from fraudstream.topics import create_topics

DELIVERY_ROUNDS = 3  # at-least-once and exactly-once drains, interleaved (bench/delivery.py)


@dataclass(frozen=True)
class StageReport:
    events: int
    seconds: float
    micros_per_event: dict[str, float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def train_registry() -> Path:
    registry = Path(tempfile.mkdtemp(prefix="fraudstream-stages-"))
    train(simulate(SimulationConfig(customers=2000, terminals=4000, days=60)), registry)
    return registry


def measure_stages(settings: Settings, frame_events: int, population: SimulationConfig,
                   registry: Path | None = None) -> StageReport:
    report, _ = drain(settings, simulate(population).iloc[:frame_events],
                      registry or train_registry())
    return report


def drain(settings: Settings, frame: pd.DataFrame, registry: Path,
          name: str = "stages") -> tuple[StageReport, Worker]:
    """A worker drains ``frame``, produced beforehand to topics of its own, in this
    process; the report times the batches from the first to the last event."""
    settings = isolated(settings, name).replace(
        model_dir=str(registry), session_timeout_ms=6000, heartbeat_interval_ms=500)
    create_topics(settings, 4)
    produce_frame(settings, frame)
    worker = build_worker(settings)
    clock: dict[str, float] = {}
    process = worker._process
    # no-untyped-def: wraps the worker's private _process, for timing only
    def timed(messages):  # type: ignore[no-untyped-def]
        clock.setdefault("first", time.perf_counter())  # after the group join
        return process(messages)

    # method-assign: the benchmark times batches by wrapping the method on this instance
    worker._process = timed  # type: ignore[method-assign]

    def stop_when_done() -> None:
        deadline = time.monotonic() + 300
        while worker.events < len(frame) and time.monotonic() < deadline:
            time.sleep(0.005)
        clock["last"] = time.perf_counter()
        worker.stop()

    threading.Thread(target=stop_when_done, daemon=True).start()
    worker.run()
    seconds = clock["last"] - clock["first"]
    totals = {}
    for metric in worker.metrics.stage_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                totals[sample.labels["stage"]] = sample.value
    per_event = {stage: value / len(frame) * 1e6 for stage, value in totals.items()}
    per_event["poll, offsets, metrics"] = (seconds - sum(totals.values())) / len(frame) * 1e6
    return StageReport(len(frame), seconds, per_event), worker


def run_stages(out: Path, quick: bool, settings: Settings, population: SimulationConfig,
               ) -> StageReport:
    from fraudstream.bench.delivery import measure_delivery, write_delivery  # it uses drain

    registry = train_registry()
    with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
            services.redis_url(settings.redis_url) as redis_url:
        settings = settings.replace(kafka_bootstrap=bootstrap, redis_url=redis_url)
        frame = simulate(population)
        backlog = frame.iloc[:30_000 if quick else 100_000]
        report, _ = drain(settings, backlog, registry)
        costs = measure_batch_costs(redis_url, load_scorer(Registry(registry).load_champion()),
                                    frame)
        delivery = measure_delivery(settings, backlog, registry, DELIVERY_ROUNDS)
    headers = ["stage", "us per event", "share"]
    total = sum(report.micros_per_event.values())
    rows = [[stage, f"{value:.1f}", f"{value / total:.0%}"]
            for stage, value in report.micros_per_event.items()]
    rows.append(["total", f"{total:.1f}", f"{report.rate:,.0f} events/s"])
    print_table(f"worker stages ({report.events:,} events drained in-process)", headers, rows)
    cost_headers = ["batch", "fetch us", "score us", "update us", "total us", "us per event"]
    cost_rows = [[str(c.size), f"{c.fetch_us:,.0f}", f"{c.score_us:,.0f}",
                  f"{c.update_us:,.0f}", f"{c.total_us:,.0f}", f"{c.per_event_us:.1f}"]
                 for c in costs]
    print_table("one batch, in process against Redis (medians)", cost_headers, cost_rows)
    by_size = {c.size: c for c in costs}
    write_results(out, "stages", {
        "events": report.events, "seconds": report.seconds,
        "micros_per_event": report.micros_per_event,
        "batch_of_1_us": by_size[FIXED_COST_SIZE].total_us,
        "per_event_us_at_512": by_size[LARGE_SIZE].per_event_us,
        "batches": [_cost_dict(c) for c in costs],
    }, markdown_table(headers, rows) + "\n" + markdown_table(cost_headers, cost_rows))
    write_delivery(out, delivery, DELIVERY_ROUNDS)
    return report


def _cost_dict(cost: BatchCost) -> dict[str, float]:
    return {"size": cost.size, "fetch_us": cost.fetch_us, "score_us": cost.score_us,
            "update_us": cost.update_us, "total_us": cost.total_us,
            "per_event_us": cost.per_event_us}
