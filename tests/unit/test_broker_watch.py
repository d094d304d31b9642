"""stream.broker_watch: a silent broker and the consumer's lag, from librdkafka statistics."""

from __future__ import annotations

import json

import pytest

from fraudstream.stream.broker_watch import BrokerUnavailable, BrokerWatch, consumer_lag


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(rx: int, lags: dict[int, int] | None = None) -> str:
    partitions = {str(p): {"partition": p, "consumer_lag": lag}
                  for p, lag in (lags or {}).items()}
    partitions["-1"] = {"partition": -1, "consumer_lag": -1}  # librdkafka's internal one
    return json.dumps({"rx": rx, "topics": {"tx": {"partitions": partitions}}})


def test_responses_that_keep_coming_keep_it_quiet() -> None:
    clock = Clock()
    watch = BrokerWatch(timeout_s=10, clock=clock)
    for rx in range(1, 30):
        clock.now += 1
        watch.on_stats(stats(rx))
        watch.check()
    assert watch.silent_for() == 0


def test_a_count_that_stops_moving_times_out() -> None:
    clock = Clock()
    watch = BrokerWatch(timeout_s=10, clock=clock)
    watch.on_stats(stats(5))
    for _ in range(10):
        clock.now += 1
        watch.on_stats(stats(5))
    watch.check()  # exactly at the timeout: still allowed
    clock.now += 1
    with pytest.raises(BrokerUnavailable, match="no broker answered for 11s"):
        watch.check()


def test_lag_sums_the_real_partitions() -> None:
    watch = BrokerWatch(timeout_s=10)
    watch.on_stats(stats(1, {0: 5, 1: 7, 2: -1}))
    assert watch.lag == 12


def test_lag_is_unknown_until_reported() -> None:
    assert consumer_lag(json.loads(stats(1))) == -1
    assert consumer_lag({}) == -1


def test_lag_per_partition_for_the_gauges() -> None:
    watch = BrokerWatch(timeout_s=10)
    watch.on_stats(stats(1, {0: 5, 3: 0}))
    assert watch.lags == {("tx", 0): 5, ("tx", 3): 0}
    watch.on_stats(stats(2, {3: 9}))
    assert watch.lags == {("tx", 3): 9}  # partition 0 revoked: no stale series


def test_group_state_comes_from_the_consumer_group_statistics() -> None:
    watch = BrokerWatch(timeout_s=10)
    assert watch.group_state == ""
    joining = json.loads(stats(1))
    joining["cgrp"] = {"state": "up", "join_state": "wait-join", "assignment_size": 0}
    watch.on_stats(json.dumps(joining))
    assert watch.group_state == "wait-join"
    joining["cgrp"]["join_state"] = "steady"
    watch.on_stats(json.dumps(joining))
    assert watch.group_state == "steady"
    watch.on_stats(stats(2))  # a consumer outside any group reports no cgrp
    assert watch.group_state == ""
