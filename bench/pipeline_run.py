"""``fraudstream bench --only pipeline``: every implementation, one broker, one Redis."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from fraudstream import services
from fraudstream.bench.pipeline import (
    Implementation,
    Measurement,
    implementations,
    measure_backlog,
    measure_paced,
    produce_frame,
)
from fraudstream.bench.plot import plot
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.models.train import train
from fraudstream.settings import Settings
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.topics import create_topics

E2E_RATE = 20_000.0
STEADY_RATE = 2_000.0  # the in-worker budget holds at this rate too (as `simulate` sends)
console = Console()


def bench_population(days: int) -> SimulationConfig:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return SimulationConfig(customers=5000, terminals=10000, days=days, seed=42,
                            start=today - timedelta(days=days))


def _quix() -> str | None:
    from fraudstream.bench.quix_env import quix_python

    try:
        with console.status("preparing the Quix Streams environment (first run only)"):
            return quix_python()
    except Exception as exc:  # the table says the peer is missing and why
        console.print(f"[yellow]Quix Streams peer unavailable: {exc}[/]")
        return None


def run_pipeline(out: Path, quick: bool, settings: Settings) -> list[Measurement]:
    events = 20_000 if quick else 200_000
    paced_seconds = 2.0 if quick else 10.0
    timeout = 45.0 if quick else 180.0
    workdir = Path(tempfile.mkdtemp(prefix="fraudstream-bench-"))
    started = time.monotonic()
    quix = _quix()
    with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
            services.redis_url(settings.redis_url) as redis_url:
        registry = workdir / "registry"
        with console.status("training the benchmark model"):
            train(simulate(SimulationConfig(customers=2000, terminals=4000, days=60)),
                  registry)
        base = settings.replace(kafka_bootstrap=bootstrap, redis_url=redis_url,
                                model_dir=str(registry), session_timeout_ms=6000,
                                heartbeat_interval_ms=500, max_poll_interval_ms=30000)
        frame = simulate(bench_population(40 if quick else 45)).iloc[:events + 1]
        source = f"bench-source-{int(time.time())}"
        create_topics(base.replace(topic_transactions=source), 4)
        with console.status(f"producing {events:,} events"):
            produce_frame(base, source, frame.iloc[1:])
        results = []
        for impl in implementations(quix):
            results.append(_measure(impl, base, source, frame, events, workdir, timeout,
                                    paced_seconds))
    _report(results, out, quick, time.monotonic() - started, bootstrap)
    return results
# no-untyped-def: frame is a pandas DataFrame, kept out of the signature
def _measure(impl: Implementation, base: Settings, source: str, frame, events: int,  # type: ignore[no-untyped-def]
             workdir: Path, timeout: float, paced_seconds: float) -> Measurement:
    expect = min(events, impl.max_events or events)
    with Progress(TextColumn(f"{impl.name:<24}"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                  transient=True) as bar:
        task = bar.add_task("drain", total=expect)
        result = measure_backlog(impl, base, source, events, workdir, timeout,
                                 tick=lambda n: bar.update(task, completed=n))
    rate = min(E2E_RATE, result.rate / 2)  # paced below capacity: latency, not queueing
    if rate >= 1:
        with console.status(f"{impl.name}: paced run at {rate:,.0f} events/s"):
            count = max(50, int(rate * paced_seconds))
            e2e50, e2e99, _, _ = measure_paced(impl, base, frame.iloc[:count], rate, workdir,
                                               timeout)
        result = dataclasses.replace(result, end_to_end_p50_ms=e2e50, end_to_end_p99_ms=e2e99,
                                     end_to_end_rate=rate)
    if impl.name == "fraudstream worker" and result.rate > 0:
        half = result.rate / 2
        with console.status(f"{impl.name}: paced run at half its rate ({half:,.0f}/s)"):
            count = int(half * paced_seconds)
            _, _, _, worker99 = measure_paced(impl, base, frame.iloc[:count], half, workdir,
                                              timeout)
        result = dataclasses.replace(result, paced_in_worker_p99_ms=worker99, paced_rate=half)
        with console.status(f"{impl.name}: paced run at {STEADY_RATE:,.0f}/s"):
            count = int(STEADY_RATE * paced_seconds)
            _, _, _, steady99 = measure_paced(impl, base, frame.iloc[:count], STEADY_RATE,
                                              workdir, timeout)
        result = dataclasses.replace(result, in_worker_p99_ms_at_2000=steady99)
        if rate != E2E_RATE:
            with console.status(f"{impl.name}: paced run at {E2E_RATE:,.0f}/s"):
                count = int(E2E_RATE * paced_seconds)
                e2e50, e2e99, _, _ = measure_paced(impl, base, frame.iloc[:count], E2E_RATE,
                                                   workdir, timeout)
            result = dataclasses.replace(result, end_to_end_p50_ms=e2e50,
                                         end_to_end_p99_ms=e2e99, end_to_end_rate=E2E_RATE)
    return result


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _report(results: list[Measurement], out: Path, quick: bool, seconds: float,
            bootstrap: str) -> None:
    worker = results[0]
    headers = ["implementation", "events/s", "worker / this", "in-worker p50 ms",
               "in-worker p99 ms", "e2e p50 ms", "e2e p99 ms", "e2e at /s", "peak RSS MB",
               "note"]
    rows = []
    for r in results:
        ratio = worker.rate / r.rate if r.rate else None
        rows.append([r.name, _fmt(r.rate, 0), _fmt(ratio, 1) + "x" if ratio else "-",
                     _fmt(r.in_worker_p50_ms, 3), _fmt(r.in_worker_p99_ms, 3),
                     _fmt(r.end_to_end_p50_ms, 1), _fmt(r.end_to_end_p99_ms, 1),
                     _fmt(r.end_to_end_rate, 0), _fmt(r.peak_rss_mb, 0), r.note])
    title = f"pipeline benchmark ({'quick' if quick else 'full'}, {seconds:.0f}s)"
    print_table(title, headers, rows)
    markdown = markdown_table(headers, rows)
    if worker.paced_rate:
        line = (f"Worker in-worker p99 (its fraudstream_event_latency_seconds histogram) at "
                f"half its rate ({worker.paced_rate:,.0f}/s): "
                f"{_fmt(worker.paced_in_worker_p99_ms, 3)} ms; at {STEADY_RATE:,.0f}/s: "
                f"{_fmt(worker.in_worker_p99_ms_at_2000, 3)} ms.")
        console.print(line)
        markdown += f"\n{line}\n"
    write_results(out, "pipeline", {"quick": quick, "seconds": seconds, "broker": bootstrap,
                                    "results": [dataclasses.asdict(r) for r in results]},
                  markdown)
    plot(results, out / "pipeline.png", title)
