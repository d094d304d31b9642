"""Per-key rate limits: one token bucket per API key, a token per transaction scored.

A bucket holds at most ``burst`` tokens and gains ``rate`` a second. A request for n
transactions takes n tokens, or is refused with the seconds until n would be there (the
Retry-After). Single-threaded by design, like the server's event loop; the clock is
injectable for tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def tokens(self, now: float) -> float:
        return min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens: 0.0 when taken, else the seconds until ``n`` are there
        (nothing is taken then). More than ``burst`` can never be taken: infinity."""
        if n > self.burst:
            return math.inf
        available = self.tokens(now)
        self._updated = max(now, self._updated)
        if available >= n:
            self._tokens = available - n
            return 0.0
        self._tokens = available
        return (n - available) / self.rate


class RateLimiter:
    """One bucket per key name, made on the key's first request."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, n: int) -> float:
        """0.0 when ``key`` may score ``n`` transactions now, else the seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(n, now)

    def has_tokens(self, key: str) -> float:
        """A cheap check before the body is read: 0.0 when ``key`` has at least one
        token, else the seconds until it has."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        available = bucket.tokens(self._clock())
        return 0.0 if available >= 1 else (1 - available) / self.rate


def retry_after_header(wait_s: float) -> str:
    """Retry-After in whole seconds (HTTP allows no fractions), at least 1."""
    return str(max(1, math.ceil(wait_s)))
