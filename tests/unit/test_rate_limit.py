"""Token buckets: a token per transaction, refilled at the rate, capped at the burst."""

from __future__ import annotations

import math

import pytest

from fraudstream.stream.http.ratelimit import RateLimiter, TokenBucket, retry_after_header


def test_a_full_bucket_gives_the_burst_then_waits_for_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(15, 0.0) == 0.0
    assert bucket.take(5, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(0.1)
    assert bucket.take(5, 0.2) == pytest.approx(0.3), "2 tokens back after 0.2 s; 3 to go"
    assert bucket.take(5, 0.5) == 0.0


def test_a_refused_request_takes_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=10, now=0.0)
    bucket.take(8, 0.0)
    assert bucket.take(5, 0.0) == pytest.approx(3.0)
    assert bucket.tokens(0.0) == pytest.approx(2.0)
    assert bucket.take(2, 0.0) == 0.0


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=100, burst=5, now=0.0)
    assert bucket.tokens(1_000.0) == 5
    assert bucket.take(6, 1_000.0) == math.inf, "more than the burst can never pass"


def test_a_clock_going_back_gives_no_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=5.0)
    bucket.take(10, 5.0)
    assert bucket.tokens(4.0) == 0.0
    assert bucket.take(1, 4.0) > 0


@pytest.mark.parametrize("rate, burst", [(0, 5), (-1, 5), (1, 0.5)])
def test_nonsense_limits_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


def test_each_key_has_its_own_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=3, clock=lambda: now[0])
    assert limiter.take("alice", 3) == 0.0
    assert limiter.has_tokens("alice") == pytest.approx(1.0)
    assert limiter.take("bob", 3) == 0.0, "alice's use does not touch bob's bucket"
    assert limiter.has_tokens("carol") == 0.0
    now[0] = 1.0
    assert limiter.has_tokens("alice") == 0.0


@pytest.mark.parametrize("wait, header", [(0.01, "1"), (1.0, "1"), (1.2, "2"), (30, "30")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header
