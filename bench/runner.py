"""``fraudstream bench``: the sections a user asked for, on services started here."""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn

from fraudstream import services
from fraudstream.bench.backfill import run_backfill
from fraudstream.bench.http_serving import run_http
from fraudstream.bench.model_quality import run_model
from fraudstream.bench.pipeline_run import bench_population, run_pipeline
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.bench.stages import run_stages
from fraudstream.bench.state_memory import measure
from fraudstream.settings import Settings

SECTIONS = ("pipeline", "stages", "memory", "backfill", "http", "model")
TARGET_BYTES_PER_CUSTOMER = 300


def run_memory(out: Path, quick: bool) -> dict[str, object]:
    customers, terminals = (100_000, 20_000) if quick else (1_000_000, 200_000)
    url, server = services.start_redis()  # private: used_memory must see only this
    try:
        with Progress(TextColumn("redis state"), BarColumn(),
                      TextColumn("{task.completed:,.0f}/{task.total:,.0f} keys"),
                      transient=True) as bar:
            task = bar.add_task("keys", total=customers + terminals)
            report = measure(url, customers, terminals,
                             progress=lambda done: bar.update(task, completed=done))
    finally:
        server.stop()
    headers = ["entity", "count", "value bytes", "Redis bytes each", "target"]
    rows = [
        ["customer (30-day ring, 2 recent ids)", f"{report.customers:,}",
         str(report.customer_value_bytes),
         f"{report.bytes_per_customer:.1f}", f"<= {TARGET_BYTES_PER_CUSTOMER}"],
        [f"terminal ({report.partitions} partition marks)", f"{report.terminals:,}",
         str(report.terminal_value_bytes), f"{report.bytes_per_terminal:.1f}", "-"],
    ]
    print_table(f"feature state memory ({report.server})", headers, rows)
    data = report.as_dict()
    write_results(out, "memory", data, markdown_table(headers, rows))
    return data


def run(out: Path, quick: bool, only: list[str] | None, settings: Settings,
        tune_model: bool = False) -> int:
    for section in only or list(SECTIONS):
        if section == "memory":
            run_memory(out, quick)
        elif section == "pipeline":
            run_pipeline(out, quick, settings)
        elif section == "stages":
            run_stages(out, quick, settings, bench_population(40 if quick else 45))
        elif section == "backfill":
            run_backfill(out, quick)
        elif section == "http":
            run_http(out, quick, settings)
        elif section == "model":
            run_model(out, tune=tune_model)
    print(f"results in {out}/")
    return 0
