"""Thread inspection for the leak check: threads a test started and left running."""

from __future__ import annotations

import threading

from tests.waiting import wait_for

# Threads a library starts once per process and keeps by design, by name prefix: none
# needed so far. Add one only with the reason it cannot be stopped.
LIBRARY_THREADS: dict[str, str] = {}
GRACE_S = 5.0  # a thread that was told to stop may still be on its way out


def running() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _expected(thread: threading.Thread) -> bool:
    return any(thread.name.startswith(prefix) for prefix in LIBRARY_THREADS)


def lingering(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before`` that are still running after a short grace, as
    ``name (daemon)`` strings; empty when the test stopped everything it started."""
    def left() -> set[threading.Thread]:
        return {t for t in running() - before if not _expected(t)}

    try:
        wait_for(lambda: not left(), "threads to end", GRACE_S, 0.05)
    except AssertionError:
        return sorted(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in left())
    return []
