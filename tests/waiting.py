"""Bounded waits for tests: the one helper every test waits through.

Tests wait on conditions (N decisions seen, a partition assigned, a status written),
never on fixed sleeps between scenario phases, so they hold on a loaded machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str | Callable[[], str], timeout: float = 60.0,
             interval: float = 0.02) -> T:
    """Until ``probe()`` returns something truthy, which is returned. After ``timeout`` s,
    AssertionError naming ``what`` (a callable is called then: a log's tail, the last
    answer seen). An AssertionError raised by ``probe`` (a process that died) ends the
    wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {detail}")
        time.sleep(interval)
