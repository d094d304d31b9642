"""stream.batch_size: batches shrink to fit the budget and grow back when there is room."""

from __future__ import annotations

from fraudstream.stream.batch_size import HEADROOM, BatchSizer


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
    sizer = BatchSizer(budget_s=0.001, max_batch=60, size=20)
    sizer.record(events=20, seconds=0.0001)
    assert sizer.size == 26
    for _ in range(10):
        sizer.record(events=sizer.size, seconds=0.0001)
    assert sizer.size == 60


def test_a_small_batch_that_was_fast_says_nothing_about_larger_ones() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, size=50)
    sizer.record(events=5, seconds=0.0001)
    assert sizer.size == 50


def test_a_batch_within_the_budget_but_near_it_keeps_the_size() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, size=50)
    sizer.record(events=50, seconds=0.0007)
    assert sizer.size == 50


def test_behind_a_backlog_the_size_grows_for_throughput_even_over_budget() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500, size=40)
    sizer.record(events=40, seconds=0.003, behind=True)
    assert sizer.size == 51
    for _ in range(30):
        sizer.record(events=sizer.size, seconds=0.01, behind=True)
    assert sizer.size == 500


def test_once_caught_up_a_slow_batch_shrinks_it_back_to_the_budget() -> None:
    sizer = BatchSizer(budget_s=0.001, max_batch=500)
    sizer.record(events=300, seconds=0.006, behind=False)
    assert sizer.size == 40
