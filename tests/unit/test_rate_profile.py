"""The simulator's daily rate curve and the send schedule it paces."""

from __future__ import annotations

import itertools

import pytest

from fraudstream.simulator.streamer import (
    daily_profile,
    planned_events,
    rate_profile,
    send_offsets,
)

DAY_S = 48.0  # two seconds an hour


def at_hour(hour: float) -> float:
    return daily_profile(DAY_S)(hour * DAY_S / 24.0)


@pytest.mark.parametrize(("hour", "multiple"), [
    (0, 0.25), (3, 0.25), (6, 0.25), (9, 1.0), (12, 4.0), (15, 1.0), (17.5, 1.0),
    (20, 1.0), (24, 0.25),
])
def test_a_quiet_night_a_day_at_the_base_rate_and_a_peak_at_four_times(
        hour: float, multiple: float) -> None:
    assert at_hour(hour) == pytest.approx(multiple)


def test_the_curve_is_smooth_and_peaks_once_at_midday() -> None:
    hours = [h / 10 for h in range(241)]
    values = [at_hour(h) for h in hours]
    assert max(values) == pytest.approx(4.0)
    assert hours[values.index(max(values))] == 12.0
    assert min(values) == pytest.approx(0.25)
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) < 0.2
    ramp = values[60:121]  # 06:00 to 12:00 only rises
    assert all(b >= a for a, b in itertools.pairwise(ramp))


def test_the_curve_is_clamped_outside_the_day() -> None:
    profile = daily_profile(DAY_S)
    assert profile(-5.0) == pytest.approx(0.25)
    assert profile(DAY_S * 2) == pytest.approx(0.25)


def test_flat_schedule_is_exactly_rate_times_duration() -> None:
    offsets = list(send_offsets(500.0, 5.0))
    assert len(offsets) == 2500
    assert offsets[:3] == [0.0, 0.002, 0.004]
    assert rate_profile("flat", 5.0) is None


def test_daily_schedule_follows_the_curve() -> None:
    rate = 1000.0
    offsets = list(send_offsets(rate, DAY_S, daily_profile(DAY_S)))
    assert offsets == sorted(offsets) and offsets[-1] < DAY_S
    per_second = [0] * int(DAY_S)
    for offset in offsets:
        per_second[int(offset)] += 1
    assert per_second[24] == pytest.approx(4 * rate, rel=0.02)  # 12:00, the peak
    assert per_second[35] == pytest.approx(rate, rel=0.02)  # 17:30, the afternoon
    assert per_second[5] == pytest.approx(rate / 4, rel=0.02)  # 02:30, the night
    # the day's mean multiple: the area under the curve over 24 hours
    assert len(offsets) == pytest.approx(rate * DAY_S * 25.875 / 24, rel=0.01)
    assert planned_events(rate, DAY_S, rate_profile("daily", DAY_S)) == len(offsets)


def test_a_profile_must_stay_positive_and_be_known() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        list(send_offsets(10.0, 5.0, lambda elapsed: 0.0))
    with pytest.raises(ValueError, match="profile must be one of"):
        rate_profile("weekly", 10.0)
    with pytest.raises(ValueError):
        daily_profile(0.0)
