"""Process inspection for leak checks, from /proc."""

from __future__ import annotations

import os
from pathlib import Path

Identity = tuple[int, int]  # (pid, start time in clock ticks): survives pid reuse


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields and fields[0] != "Z":
                stats[int(entry)] = fields
    return stats


def child_pids(parent: int | None = None) -> set[int]:
    """Live (non-zombie) direct children of ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    return {pid for pid, fields in _all_stats().items() if int(fields[1]) == parent}


def descendants(root: int) -> set[Identity]:
    """Every live process below ``root``, by parent links."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found: set[Identity] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, int(stats[child][19])))
            todo.append(child)
    return found


def still_alive(processes: set[Identity]) -> set[Identity]:
    alive = set()
    for pid, started in processes:
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z" and int(fields[19]) == started:
            alive.add((pid, started))
    return alive
