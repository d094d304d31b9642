"""A transient progress bar on stderr, one line per stage of a long command."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

Progress = Callable[[str, float, float | None], None]
"""(stage, done, total or None)."""


@contextmanager
def progress_bar(source: Path | None, stages: Mapping[str, str],
                 ) -> Iterator[Progress]:
    """A transient rich progress bar, one line per stage (named by ``stages``), on
    stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn
    from rich.progress import Progress as Bar

    with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
             TaskProgressColumn(), console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: float, total: float | None) -> None:
            if stage not in tasks:
                label = stages.get(stage, stage) + (
                    f" {source.name}" if stage == "reading" and source else "")
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
