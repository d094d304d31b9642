"""Write benchmark results as JSON and Markdown, and print the tables."""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def measured_on() -> dict[str, Any]:
    """When and where a result was measured: figures mean little without it."""
    return {"at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "host": socket.gethostname(), "cores": os.cpu_count(),
            "cpu": _cpu_model(), "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(out: Path, name: str, data: dict[str, Any], markdown: str,
                  readme_part: str | None = None) -> None:
    """``name``.json and ``name``.md in ``out``, each saying when and on what machine.
    ``readme_part``: what of it the checkout's README shows, refreshed there when ``out``
    is the checkout's ``docs/bench-results`` (see ``refresh_readme``)."""
    measured = measured_on()
    stamp = (f"_Measured {measured['at']} on {measured['host']} ({measured['cores']} cores, "
             f"{measured['cpu']}; load average {measured['load_average_1m']} at the end)._"
             "\n\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**data, "measured": measured}, indent=2,
                                                 sort_keys=True))
    (out / f"{name}.md").write_text(stamp + markdown)
    if readme_part is not None:
        readme = out.resolve().parent.parent / "README.md"
        if out.resolve().parts[-2:] == ("docs", "bench-results") and readme.exists():
            readme.write_text(refresh_readme(readme.read_text(), name, stamp + readme_part))


def readme_markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def refresh_readme(readme: str, name: str, part: str) -> str:
    """``readme`` with what stands between its markers for ``name`` replaced by ``part``
    (unchanged when it has no such markers): the README shows the benchmark's own figures,
    never copies of them."""
    begin, end = readme_markers(name)
    if begin not in readme or end not in readme:
        return readme
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{part.strip()}\n{end}{tail}"
