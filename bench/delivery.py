"""What exactly-once costs: the stages section's in-process drain of one backlog,
at-least-once, exactly-once with the default transaction interval, and exactly-once with
one transaction per batch; rounds interleaved, the median round of each reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.bench.stages import drain
from fraudstream.settings import Settings


@dataclass(frozen=True)
class DeliveryRun:
    mode: str
    events: int
    seconds: float
    commits: int  # transactions committed, the one at shutdown included
    commit_seconds: float  # their time to send offsets and commit, summed

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def modes(settings: Settings) -> dict[str, Settings]:
    interval = settings.transaction_interval_ms
    return {
        "at-least-once": settings.replace(exactly_once=False),
        f"exactly-once, {interval} ms transactions": settings.replace(exactly_once=True),
        "exactly-once, one transaction per batch": settings.replace(
            exactly_once=True, transaction_interval_ms=0),
    }


def measure_delivery(settings: Settings, frame: pd.DataFrame, registry: Path,
                     rounds: int) -> list[DeliveryRun]:
    """The median round of each mode (by events/s); the modes take turns in every round,
    so a machine that slows down mid-run slows them alike."""
    runs: dict[str, list[DeliveryRun]] = {}
    for _ in range(rounds):
        for mode, mode_settings in modes(settings).items():
            report, worker = drain(mode_settings, frame, registry, name="delivery")
            commits, commit_seconds = 0, 0.0
            for metric in worker.metrics.transactions.collect():
                commits += int(sum(s.value for s in metric.samples
                                   if s.name.endswith("_total")
                                   and s.labels.get("outcome") == "committed"))
            for metric in worker.metrics.transaction_seconds.collect():
                commit_seconds += sum(s.value for s in metric.samples
                                      if s.name.endswith("_sum"))
            runs.setdefault(mode, []).append(
                DeliveryRun(mode, report.events, report.seconds, commits, commit_seconds))
    return [sorted(mode_runs, key=lambda run: run.rate)[(len(mode_runs) - 1) // 2]
            for mode_runs in runs.values()]


def write_delivery(out: Path, runs: list[DeliveryRun], rounds: int) -> None:
    base = runs[0].rate
    headers = ["delivery", "events", "events/s", "vs at-least-once", "commits",
               "mean commit ms"]
    rows = [[run.mode, f"{run.events:,}", f"{run.rate:,.0f}",
             f"{run.rate / base - 1:+.0%}" if run is not runs[0] else "-",
             str(run.commits) if run.commits else "-",
             f"{run.commit_seconds / run.commits * 1e3:.2f}" if run.commits else "-"]
            for run in runs]
    print_table(f"delivery guarantees (in-process drain, median of {rounds} rounds)",
                headers, rows)
    note = (f"\nThe same backlog drained in process, {rounds} interleaved rounds, the median "
            "round of each; commits include the one at shutdown.\n")
    write_results(out, "delivery", {
        "rounds": rounds,
        "runs": [{"mode": run.mode, "events": run.events, "seconds": run.seconds,
                  "events_per_s": run.rate, "commits": run.commits,
                  "commit_seconds": run.commit_seconds} for run in runs],
    }, markdown_table(headers, rows) + note)
