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


def write_results(out: Path, name: str, data: dict[str, Any], markdown: str) -> None:
    """``name``.json and ``name``.md in ``out``, each saying when and on what machine."""
    measured = measured_on()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**data, "measured": measured}, indent=2,
                                                 sort_keys=True))
    (out / f"{name}.md").write_text(
        f"_Measured {measured['at']} on {measured['host']} ({measured['cores']} cores, "
        f"{measured['cpu']}; load average {measured['load_average_1m']} at the end)._\n\n"
        + markdown)
