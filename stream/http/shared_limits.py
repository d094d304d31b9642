"""Rate and concurrency limits per API key, shared by every process and replica of
``fraudstream serve``: the buckets live in Redis, one Lua call per check.

One script does both checks atomically on Redis's own clock (so replicas on hosts with
skewed clocks share one bucket): it drops in-flight entries older than ``stale_s`` (a
process killed mid-request never holds a slot for long), refuses when the key already
has ``max_in_flight`` requests open, then refills and takes from the token bucket. Keys
carry the API key name as a hash tag, so both keys of one API key sit on one Redis
Cluster slot.

When Redis does not answer, the limits fall back to this process's own buckets (and
say so once per outage): a feature-store outage already degrades scoring, and refusing
every caller for it would turn a slow Redis into an outage of the API.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import redis

from fraudstream.stream.http.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# KEYS: bucket hash, in-flight sorted set. ARGV: rate, burst, cost, max in flight (0: no
# slot asked for), request id, stale seconds. Returns {taken, seconds to wait | -1 when
# refused for concurrency}.
ADMIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slots, stale = tonumber(ARGV[4]), tonumber(ARGV[6])
if slots > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - stale)
  if redis.call('ZCARD', KEYS[2]) >= slots then return {0, '-1'} end
end
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens, updated = tonumber(state[1]), tonumber(state[2])
if tokens == nil or updated == nil then tokens, updated = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if cost > burst then
  wait = 1e9
elseif tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(math.max(now, updated)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
if wait > 0 then return {0, tostring(wait)} end
if slots > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], math.ceil(stale * 1000))
end
return {1, '0'}
"""

TOO_MANY = -1.0  # "seconds to wait" meaning: too many requests of this key in flight


class SharedLimits:
    """``admit`` (one token and one in-flight slot), ``charge`` (more tokens), ``release``
    (the slot): each one Redis call, or the local fallback while Redis is away."""

    def __init__(self, client: Any, prefix: str, rate: float, burst: float,
                 max_in_flight: int, stale_s: float, retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_in_flight = max_in_flight
        self._client = client
        self._script = client.register_script(ADMIT_SCRIPT)
        self._prefix = prefix
        self._stale_s = stale_s
        self._local = RateLimiter(rate, burst, clock)
        self._local_in_flight: dict[str, int] = {}
        self._ids = itertools.count()
        self._tag = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:"
        self._clock = clock
        self._retry_s = retry_s
        self._retry_at = 0.0  # while Redis is away, it is tried again only from then

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:ratelimit:{{{key}}}"
        return [base, base + ":in-flight"]

    def admit(self, key: str) -> tuple[float, str]:
        """(0.0, request id) when ``key`` may start a request; (seconds to wait, "") when
        its bucket is empty, (TOO_MANY, "") when too many of its requests are open."""
        request_id = f"{self._tag}{next(self._ids)}"
        if self._away():
            return self._admit_locally(key, "local:" + request_id)
        try:
            taken, wait = self._script(keys=self._keys(key), args=[
                self.rate, self.burst, 1, self.max_in_flight, request_id, self._stale_s])
        except redis.RedisError as exc:
            self._fell_back(exc)
            return self._admit_locally(key, "local:" + request_id)
        self._recovered()
        return (0.0, request_id) if int(taken) else (float(wait), "")

    def charge(self, key: str, tokens: int) -> float:
        """0.0 when ``tokens`` more were taken, else the seconds until they would be."""
        if tokens <= 0:
            return 0.0
        if self._away():
            return self._local.take(key, tokens)
        try:
            taken, wait = self._script(keys=self._keys(key), args=[
                self.rate, self.burst, tokens, 0, "", self._stale_s])
        except redis.RedisError as exc:
            self._fell_back(exc)
            return self._local.take(key, tokens)
        self._recovered()
        return 0.0 if int(taken) else float(wait)

    def release(self, key: str, request_id: str) -> None:
        if request_id.startswith("local:"):
            self._local_in_flight[key] = max(0, self._local_in_flight.get(key, 0) - 1)
            return
        if not request_id or self._away():
            return  # never admitted, or Redis away: the entry goes stale on its own
        try:
            self._client.zrem(self._keys(key)[1], request_id)
        except redis.RedisError as exc:  # the entry goes stale on its own
            self._fell_back(exc)

    def _admit_locally(self, key: str, request_id: str) -> tuple[float, str]:
        if self._local_in_flight.get(key, 0) >= self.max_in_flight:
            return TOO_MANY, ""
        wait = self._local.take(key, 1)
        if wait > 0:
            return wait, ""
        self._local_in_flight[key] = self._local_in_flight.get(key, 0) + 1
        return 0.0, request_id

    def _away(self) -> bool:
        return self._retry_at > 0 and self._clock() < self._retry_at

    def _fell_back(self, exc: Exception) -> None:
        first = self._retry_at == 0
        self._retry_at = self._clock() + self._retry_s
        if first:
            log.warning("rate limits: Redis is not answering (%s); limiting per process "
                        "until it is back", exc)

    def _recovered(self) -> None:
        if self._retry_at:
            self._retry_at = 0.0
            log.info("rate limits: Redis answers again; limits are shared again")
