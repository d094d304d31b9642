"""``fraudstream score-file``: the progress bar and the summary around ``score_file``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.batch.files import InputFileError
from fraudstream.batch.plan import make_plan
from fraudstream.settings import Settings
from models.registry import Registry

if TYPE_CHECKING:
    from fraudstream.batch.score_file import Progress, Summary

STAGES = {"reading": "reading and checking", "features": "computing features",
          "scoring": "scoring and writing"}


@contextmanager
def progress_bar(source: Path | None, stages: Mapping[str, str] = STAGES,
                 ) -> Iterator[Progress]:
    """A transient rich progress bar, one line per stage (named by ``stages``), on
    stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, SpinnerColumn, TaskProgressColumn, TextColumn
    from rich.progress import Progress as Bar

    with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
             TaskProgressColumn(), console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: float, total: float | None) -> None:
            if stage not in tasks:
                label = stages.get(stage, stage) + (
                    f" {source.name}" if stage == "reading" and source else "")
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Score ``args.input`` into ``args.output`` with the champion (or ``--version``)."""
    plan = make_plan(args.input, args.output, args.rejects, use_labels=not args.ignore_labels,
                     sort_by_time=args.sort_by_time)
    artifact = Registry(args.registry or settings.model_dir).load_version(args.version)
    from fraudstream.batch.score_file import score_plan  # scikit-learn: slow to import

    with progress_bar(args.input) as progress:
        summary = score_plan(plan, artifact, progress)
    for line in report(summary):
        print(line)
    if summary.scored == 0:
        raise InputFileError(f"no valid transaction in {args.input}: all {summary.rejected} "
                             f"rows rejected (reasons in {summary.rejects})")
    return 0


def report(summary: Summary) -> list[str]:
    """The summary lines printed after a run."""
    from models.decisions import OUTCOMES

    outcomes = ", ".join(f"{summary.outcomes.get(o, 0):,} {o}" for o in OUTCOMES)
    lines = [
        f"scored {summary.scored:,} of {summary.rows:,} rows with model "
        f"{summary.model_version} ({summary.backend}) in {summary.seconds:.1f}s "
        f"({summary.rows_per_s:,.0f} rows/s): {outcomes}",
        f"rejected {summary.rejected:,} rows; labels: {summary.labels:,} used "
        f"({summary.frauds:,} frauds), {summary.labels_ignored:,} ignored",
    ]
    if summary.rules_rows:
        lines.append(f"the model failed on {summary.rules_rows:,} rows: decided by rules "
                     f"(degraded: model)")
    lines.append(f"wrote {summary.output} and {summary.rejects}")
    return lines
