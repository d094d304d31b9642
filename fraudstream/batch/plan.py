"""What a score-file run will read and write, checked before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fraudstream.batch.files import InputFile, file_format, open_input
from fraudstream.batch.validate import Layout, layout_of
from fraudstream.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    source: InputFile
    layout: Layout
    output: Path
    rejects: Path
    sort_by_time: bool = False


def default_rejects_path(output: Path) -> Path:
    """``decisions.parquet`` -> ``decisions.rejects.parquet``."""
    return output.with_name(f"{output.stem}.rejects{output.suffix}")


def make_plan(source: Path, output: Path, rejects: Path | None = None, use_labels: bool = True,
              sort_by_time: bool = False) -> Plan:
    """Check the paths and formats, open the input and check its columns: every problem
    found here is one readable error, before anything heavy starts."""
    rejects = rejects or default_rejects_path(output)
    file_format(output, "output")
    file_format(rejects, "rejects file")
    if len({p.resolve() for p in (source, output, rejects)}) < 3:
        raise ConfigError("the input, the output and the rejects file must be three "
                          "different files")
    opened = open_input(source)
    return Plan(opened, layout_of(opened, use_labels), output, rejects, sort_by_time)
