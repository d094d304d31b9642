"""stream.batch_size: batches shrink to fit the budget and grow back when there is room;
only a real backlog (not a burst) switches to draining in the largest batches."""

from __future__ import annotations

from fraudstream.stream.batch_size import DRAIN_ABOVE_S, DRAIN_UNTIL_S, HEADROOM, BatchSizer


def test_starts_at_the_configured_maximum() -> None:
    assert BatchSizer(budget_s=0.001, max_batch=500).size == 500


def test_a_slow_batch_shrinks_the_size_to_what_fits_the_budget() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500)
    sizer.record(events=500, seconds=0.004)  # 8 us per event: 100 fit in 0.8 ms
    assert sizer.size == int(500 * 0.001 * HEADROOM / 0.004) == 100


def test_never_below_the_minimum() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, min_batch=10)
    sizer.record(events=500, seconds=1.0)
    assert sizer.size == 10


def test_a_full_fast_batch_grows_the_size_up_to_the_maximum() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=60, fitted=20)
    sizer.record(events=20, seconds=0.0001)
    assert sizer.size == 26
    for _ in range(10):
        sizer.record(events=sizer.size, seconds=0.0001)
    assert sizer.size == 60


def test_a_small_batch_that_was_fast_says_nothing_about_larger_ones() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, fitted=50)
    sizer.record(events=5, seconds=0.0001)
    assert sizer.size == 50


def test_a_small_batch_that_missed_the_budget_shrinks_the_size() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, min_batch=1, fitted=50)
    sizer.record(events=10, seconds=0.002)
    assert sizer.size == int(10 * 0.001 * HEADROOM / 0.002) == 4


def test_a_batch_within_the_budget_but_near_it_keeps_the_size() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, fitted=50)
    sizer.record(events=50, seconds=0.0007)
    assert sizer.size == 50


def test_a_burst_is_not_a_backlog_the_size_stays_within_the_budget() -> None:
    """A few hundred events waiting after a fetch: budget-sized batches clear them in
    milliseconds, so the batches stay budget-sized."""
    sizer = BatchSizer(budget_s=0.001, max_batch=500, fitted=40)
    for _ in range(20):
        sizer.record(events=40, seconds=0.0007, waiting=400)
    assert not sizer.draining and sizer.size == 40


def test_a_backlog_is_drained_in_the_largest_batches_until_nearly_cleared() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, fitted=40)
    per_second = 40 / (0.001 * HEADROOM)  # events budget-sized batches clear a second
    sizer.record(events=40, seconds=0.0007, waiting=int(per_second * DRAIN_ABOVE_S * 2))
    assert sizer.draining and sizer.size == 500
    sizer.record(events=500, seconds=0.01, waiting=int(per_second * DRAIN_ABOVE_S / 2))
    assert sizer.draining, "hysteresis: still draining between the two thresholds"
    fitted = sizer.fitted
    assert fitted == int(500 * 0.001 * HEADROOM / 0.01)  # learned from the large batch
    sizer.record(events=500, seconds=0.01,
                 waiting=int(fitted / (0.001 * HEADROOM) * DRAIN_UNTIL_S / 2))
    assert not sizer.draining and sizer.size == fitted
