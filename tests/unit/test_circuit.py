"""stream.circuit: the feature store's circuit breaker, on a fake clock."""

from __future__ import annotations

import pytest

from fraudstream.stream.circuit import CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(threshold: int = 3, reset_after_s: float = 5.0,
            clock: FakeClock | None = None) -> tuple[CircuitBreaker, FakeClock]:
    clock = clock or FakeClock()
    return CircuitBreaker(threshold, reset_after_s, clock=clock), clock


def open_breaker(threshold: int = 3, reset_after_s: float = 5.0,
                 ) -> tuple[CircuitBreaker, FakeClock]:
    cb, clock = breaker(threshold, reset_after_s)
    for _ in range(threshold):
        assert cb.allow()
        cb.record_failure()
    assert cb.state == "open"
    return cb, clock


def test_starts_closed_and_lets_everything_through() -> None:
    cb, _ = breaker()
    assert cb.state == "closed"
    assert all(cb.allow() for _ in range(10))
    assert cb.times_opened == 0
    assert cb.last_opened_at is None and cb.last_closed_at is None
    assert cb.recovered_after_s() is None and cb.open_for_s() is None


def test_opens_at_the_threshold_of_consecutive_failures() -> None:
    cb, clock = breaker(threshold=3)
    assert cb.record_failure() is False
    assert cb.record_failure() is False
    assert cb.state == "closed" and cb.consecutive_failures == 2
    assert cb.allow()
    assert cb.record_failure() is True  # this one began the outage
    assert cb.state == "open"
    assert cb.times_opened == 1
    assert cb.last_opened_at == clock.now
    assert not cb.allow()


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    cb, _ = breaker(threshold=3)
    cb.record_failure()
    cb.record_failure()
    assert cb.record_success() is False  # closed already: no outage ended
    assert cb.consecutive_failures == 0
    cb.record_failure()
    cb.record_failure()
    assert cb.state == "closed"
    cb.record_failure()
    assert cb.state == "open"


def test_threshold_of_one_opens_on_the_first_failure() -> None:
    cb, _ = breaker(threshold=1)
    cb.record_failure()
    assert cb.state == "open"


def test_open_refuses_until_the_timer_runs_out() -> None:
    cb, clock = open_breaker(reset_after_s=5.0)
    clock.advance(4.999)
    assert not cb.allow()
    assert cb.state == "open"
    clock.advance(0.001)  # exactly reset_after_s after opening
    assert cb.allow()
    assert cb.state == "half_open"


def test_state_does_not_change_by_itself_when_the_timer_runs_out() -> None:
    cb, clock = open_breaker()
    clock.advance(60.0)
    assert cb.state == "open"  # only allow() lets the probe through


def test_half_open_lets_exactly_one_probe_through() -> None:
    cb, clock = open_breaker(reset_after_s=5.0)
    clock.advance(5.0)
    assert cb.allow() is True
    assert [cb.allow() for _ in range(5)] == [False] * 5
    clock.advance(100.0)  # however long the probe takes
    assert not cb.allow()
    assert cb.state == "half_open"


def test_a_failed_probe_reopens_and_restarts_the_timer() -> None:
    cb, clock = open_breaker(reset_after_s=5.0)
    opened_at = cb.last_opened_at
    clock.advance(7.0)
    assert cb.allow()
    assert cb.record_failure() is False  # not a new outage
    assert cb.state == "open"
    assert cb.probes_failed == 1
    assert cb.times_opened == 1
    assert cb.last_opened_at == opened_at  # the outage began at the first opening
    clock.advance(4.0)  # 11 s after opening, but only 4 s after the failed probe
    assert not cb.allow()
    clock.advance(1.0)
    assert cb.allow()
    assert cb.state == "half_open"


def test_a_successful_probe_closes_and_resets() -> None:
    cb, clock = open_breaker(threshold=2, reset_after_s=5.0)
    clock.advance(5.0)
    assert cb.allow()
    assert cb.record_success() is True
    assert cb.state == "closed"
    assert cb.last_closed_at == clock.now
    assert all(cb.allow() for _ in range(3))
    cb.record_failure()  # the count starts again from zero
    assert cb.state == "closed"
    cb.record_failure()
    assert cb.state == "open"
    assert cb.times_opened == 2


def test_recovered_after_spans_the_whole_outage_including_failed_probes() -> None:
    cb, clock = open_breaker(reset_after_s=5.0)
    assert cb.recovered_after_s() is None
    clock.advance(5.0)
    cb.allow()
    cb.record_failure()
    clock.advance(2.0)
    assert cb.open_for_s() == pytest.approx(7.0)
    assert cb.recovered_after_s() is None  # still out
    clock.advance(3.5)
    assert cb.allow()
    assert cb.recovered_after_s() is None  # half-open: still out
    cb.record_success()
    assert cb.recovered_after_s() == pytest.approx(10.5)
    assert cb.open_for_s() is None


def test_recovered_after_is_none_during_a_later_outage_then_reports_that_one() -> None:
    cb, clock = open_breaker(threshold=1, reset_after_s=1.0)
    clock.advance(1.0)
    cb.allow()
    cb.record_success()
    assert cb.recovered_after_s() == pytest.approx(1.0)
    clock.advance(30.0)
    cb.record_failure()  # second outage
    assert cb.recovered_after_s() is None
    clock.advance(4.0)
    cb.allow()
    cb.record_success()
    assert cb.recovered_after_s() == pytest.approx(4.0)
    assert cb.times_opened == 2


def test_failures_while_open_change_nothing() -> None:
    cb, clock = open_breaker(threshold=3, reset_after_s=5.0)
    opened_at = cb.last_opened_at
    clock.advance(3.0)
    for _ in range(5):  # more than the threshold: still one outage, same timer
        assert cb.record_failure() is False
    assert cb.state == "open" and cb.probes_failed == 0 and cb.times_opened == 1
    assert cb.last_opened_at == opened_at and cb.consecutive_failures == 0
    clock.advance(2.0)  # the timer kept running from the opening
    assert cb.allow()


def test_success_while_open_closes() -> None:
    cb, clock = open_breaker()
    clock.advance(1.0)
    assert cb.record_success() is True
    assert cb.state == "closed"
    assert cb.recovered_after_s() == pytest.approx(1.0)


def test_zero_reset_probes_at_once() -> None:
    cb, _ = open_breaker(reset_after_s=0.0)
    assert cb.allow()
    assert cb.state == "half_open"
    assert not cb.allow()


def test_uses_the_monotonic_clock_by_default() -> None:
    cb = CircuitBreaker(1, 3600.0)
    cb.record_failure()
    assert cb.state == "open"
    assert not cb.allow()


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (-1, 1.0), (1, -0.1),
                                                  (1, float("nan"))])
def test_rejects_bad_parameters(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, reset)


def test_a_probe_that_made_no_call_leaves_it_open_and_probes_again() -> None:
    """Labels without frauds need no Redis call: that says nothing about Redis."""
    cb, clock = open_breaker()
    clock.advance(5.0)
    assert cb.allow()
    assert cb.state == "half_open"
    cb.release_probe()
    assert cb.state == "open"
    assert cb.allow(), "the next caller probes at once: the timer had run out"
    cb.record_failure()
    assert cb.state == "open"
    assert not cb.allow()


def test_release_probe_changes_nothing_when_closed() -> None:
    cb, _ = breaker()
    cb.release_probe()
    assert cb.state == "closed"
