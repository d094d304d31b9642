"""A circuit breaker for the feature store: stop calling a dead Redis, probe until it is back.

closed     every call goes through; ``failure_threshold`` consecutive failures open it.
open       no call goes through until ``reset_after_s`` has passed since it opened; the
           next ``allow()`` then moves to half-open and lets ONE probe through.
half_open  the probe is outstanding: nothing else goes through. Its success closes the
           breaker; its failure reopens it and restarts the timer.

Single-threaded by design (the worker is): no locks. The clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]
CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half_open"


class CircuitBreaker:
    """Counters for metrics and logs: ``times_opened`` (outages: closed -> open),
    ``probes_failed`` (half-open -> open), ``last_opened_at`` (clock time the last outage
    began) and ``last_closed_at`` (clock time the breaker last closed after an outage)."""

    def __init__(self, failure_threshold: int, reset_after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if not reset_after_s >= 0:  # also rejects NaN
            raise ValueError(f"reset_after_s must be >= 0, got {reset_after_s}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = float(reset_after_s)
        self._clock = clock
        self._state: State = CLOSED
        self._failures = 0
        self._timer_started_at = 0.0  # when the breaker (re)opened: the probe waits on it
        self.times_opened = 0
        self.probes_failed = 0
        self.last_opened_at: float | None = None
        self.last_closed_at: float | None = None

    @property
    def state(self) -> State:
        """"closed", "open" or "half_open". An open breaker whose timer has run out stays
        "open" until ``allow()`` lets the probe through."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success while closed (0 once open)."""
        return self._failures

    def allow(self) -> bool:
        """May the caller try the feature store now? When this returns True the caller
        must report the outcome with ``record_success`` or ``record_failure``."""
        if self._state == CLOSED:
            return True
        if self._state == HALF_OPEN:  # the probe is outstanding
            return False
        if self._clock() - self._timer_started_at >= self.reset_after_s:
            self._state = HALF_OPEN
            return True
        return False

    def release_probe(self) -> None:
        """The caller was allowed through but made no call (nothing to read): the
        outcome proves nothing, so a half-open breaker goes back to open, its timer
        still run out, and the next ``allow()`` probes again."""
        if self._state == HALF_OPEN:
            self._state = OPEN

    def record_success(self) -> bool:
        """The call worked: close and reset the counts. Returns True when this success
        ended an outage (the breaker was open or half-open): see ``recovered_after_s``."""
        self._failures = 0
        if self._state == CLOSED:
            return False
        self._state = CLOSED
        self.last_closed_at = self._clock()
        return True

    def record_failure(self) -> bool:
        """The call failed. Closed: count it, and open at the threshold. Half-open: the
        probe failed, reopen and restart the timer. Open (a call made without ``allow``):
        no change, the timer keeps running. Returns True when this failure began an
        outage (closed -> open)."""
        if self._state == HALF_OPEN:
            self.probes_failed += 1
            self._state = OPEN
            self._timer_started_at = self._clock()
            return False
        if self._state == OPEN:
            return False
        self._failures += 1
        if self._failures < self.failure_threshold:
            return False
        now = self._clock()
        self._state = OPEN
        self._failures = 0
        self._timer_started_at = now
        self.last_opened_at = now
        self.times_opened += 1
        return True

    def recovered_after_s(self) -> float | None:
        """Seconds from the start of the last outage to the close that ended it; None if
        the breaker never opened or that outage is not over yet."""
        if self._state != CLOSED or self.last_opened_at is None or self.last_closed_at is None:
            return None
        return self.last_closed_at - self.last_opened_at

    def open_for_s(self) -> float | None:
        """Seconds since the current outage began; None while closed."""
        if self._state == CLOSED or self.last_opened_at is None:
            return None
        return self._clock() - self.last_opened_at
