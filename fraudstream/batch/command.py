"""``fraudstream score-file``: the progress bar and the summary around ``score_file``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fraudstream.batch.files import InputFileError
from fraudstream.batch.plan import make_plan
from fraudstream.models.registry import Registry
from fraudstream.progress import progress_bar
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from fraudstream.batch.score_file import Summary

STAGES = {"reading": "reading and checking", "features": "computing features",
          "scoring": "scoring and writing"}


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Score ``args.input`` into ``args.output`` with the champion (or ``--version``)."""
    plan = make_plan(args.input, args.output, args.rejects, use_labels=not args.ignore_labels,
                     sort_by_time=args.sort_by_time)
    artifact = Registry(args.registry or settings.model_dir).load_version(args.version)
    from fraudstream.batch.score_file import score_plan  # scikit-learn: slow to import

    with progress_bar(args.input, STAGES) as progress:
        summary = score_plan(plan, artifact, progress)
    for line in report(summary):
        print(line)
    if summary.scored == 0:
        raise InputFileError(f"no valid transaction in {args.input}: all {summary.rejected} "
                             f"rows rejected (reasons in {summary.rejects})")
    return 0


def report(summary: Summary) -> list[str]:
    """The summary lines printed after a run."""
    from fraudstream.models.decisions import OUTCOMES

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
