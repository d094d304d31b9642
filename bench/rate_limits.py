"""What one shared rate-limit check costs: our Lua token bucket (``SharedLimits``) against
the ``limits`` library's Redis strategies, on a private Redis (or FRAUDSTREAM_REDIS_URL).

    .venv/bin/pip install limits==5.8.0   # a measurement tool only, not a dependency
    .venv/bin/python -m fraudstream.bench.rate_limits [--calls 5000]

Prints microseconds per check (median and p99 of per-call times, plus the mean), each
check being what one request of the HTTP scorer costs: admission (a token and an
in-flight slot for ours) and, for ours, the release of the slot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import redis

from fraudstream import services
from fraudstream.stream.http.shared_limits import SharedLimits


def timed(check: Callable[[int], object], calls: int) -> dict[str, float]:
    for i in range(200):  # connections made, scripts loaded
        check(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        check(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {"p50_us": samples[len(samples) // 2], "p99_us": samples[int(len(samples) * 0.99)],
            "mean_us": statistics.fmean(samples)}


def ours(url: str) -> tuple[Callable[[int], object], Callable[[int], object]]:
    client = redis.Redis.from_url(url)
    limits = SharedLimits(client, "bench", rate=1e9, burst=1e9, max_in_flight=1000,
                          stale_s=60)

    def admit_only(_: int) -> object:
        return limits.charge("key", 1)

    def admit_and_release(_: int) -> object:
        wait, request_id = limits.admit("key")
        limits.release("key", request_id)
        return wait

    return admit_only, admit_and_release


def library(url: str) -> dict[str, Callable[[int], object]]:
    from limits import RateLimitItemPerSecond, storage, strategies

    store = storage.RedisStorage(url)
    item = RateLimitItemPerSecond(10**9)
    found = {}
    for name in ("FixedWindowRateLimiter", "MovingWindowRateLimiter",
                 "SlidingWindowCounterRateLimiter"):
        limiter = getattr(strategies, name)(store)
        found[f"limits {name}"] = (  # one key per strategy: their values differ in type
            lambda lim, key: lambda _: lim.hit(item, key))(limiter, name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with services.redis_url(os.environ.get("FRAUDSTREAM_REDIS_URL")) as url:
        admit_only, admit_and_release = ours(url)
        rows = {"ours: token bucket (one EVALSHA)": timed(admit_only, args.calls),
                "ours: admit + release (EVALSHA + ZREM)": timed(admit_and_release,
                                                                args.calls)}
        try:
            for name, check in library(url).items():
                rows[name] = timed(check, args.calls)
        except ImportError:
            print("limits is not installed: pip install limits==5.8.0")
    for name, row in rows.items():
        print(f"{name:<48} p50 {row['p50_us']:7.1f} us  p99 {row['p99_us']:7.1f} us  "
              f"mean {row['mean_us']:7.1f} us")


if __name__ == "__main__":
    main()
