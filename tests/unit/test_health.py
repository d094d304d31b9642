"""stream.health: every way a worker can be alive and yet not working (liveness), and
when it takes its share of the input (readiness)."""

from __future__ import annotations

import pytest

from fraudstream.stream.health import assess, assess_readiness
from fraudstream.stream.status import WorkerStatus

NOW = 1_800_000_000.0


def status(**changes: object) -> WorkerStatus:
    fields: dict[str, object] = {"pid": 1, "written_at": NOW - 1, "assigned": ["tx[0]"],
                                 "batches": 10, "events": 100, "last_progress": NOW - 1,
                                 "lag": 0, "broker_silent_s": 0.5, "input_partitions": 1,
                                 "group_state": "steady"}
    fields.update(changes)
    return WorkerStatus(**fields)


def judge(current: WorkerStatus | None):
    return assess(current, NOW, max_age_s=10, max_stall_s=30, max_broker_silence_s=20)


def test_a_working_worker_is_healthy() -> None:
    verdict = judge(status())
    assert verdict.healthy and "lag 0" in verdict.reason


def test_an_idle_worker_without_lag_is_healthy() -> None:
    assert judge(status(last_progress=NOW - 3600, lag=0)).healthy


@pytest.mark.parametrize("changes, words", [
    ({"written_at": NOW - 60}, "not written for 60s"),
    ({"stopping": True}, "shutting down"),
    ({"broker_silent_s": 45.0}, "no broker answered for 45s"),
    ({"lag": 500, "last_progress": NOW - 120}, "500 events waiting"),
])
def test_unhealthy_states_say_why(changes: dict[str, object], words: str) -> None:
    verdict = judge(status(**changes))
    assert not verdict.healthy
    assert words in verdict.reason


def test_no_status_file_is_unhealthy() -> None:
    assert not judge(None).healthy


def test_lag_within_the_stall_allowance_is_still_healthy() -> None:
    assert judge(status(lag=500, last_progress=NOW - 5)).healthy


def ready(current: WorkerStatus | None):
    return assess_readiness(current, NOW, max_age_s=10, max_stall_s=30,
                            max_broker_silence_s=20)


def test_a_worker_with_input_partitions_is_ready() -> None:
    verdict = ready(status(input_partitions=3))
    assert verdict.healthy and "processing 3 input partitions" in verdict.reason


def test_a_worker_keeps_readiness_through_a_rebalance_while_it_holds_partitions() -> None:
    assert ready(status(input_partitions=2, group_state="wait-join")).healthy


def test_a_joined_worker_without_partitions_stands_by_ready() -> None:
    verdict = ready(status(input_partitions=0, assigned=[], group_state="steady"))
    assert verdict.healthy and "standing by" in verdict.reason


@pytest.mark.parametrize("state", ["wait-join", "wait-sync", ""])
def test_a_worker_still_joining_is_not_ready(state: str) -> None:
    verdict = ready(status(input_partitions=0, assigned=[], group_state=state))
    assert not verdict.healthy
    assert f"state {state or 'unknown'}" in verdict.reason


def test_labels_partitions_alone_do_not_make_a_worker_ready() -> None:
    verdict = ready(status(input_partitions=0, assigned=["labels[0]"], group_state="init"))
    assert not verdict.healthy


@pytest.mark.parametrize("changes, words", [
    ({"written_at": NOW - 60}, "not written for 60s"),
    ({"stopping": True}, "shutting down"),
    ({"broker_silent_s": 45.0}, "no broker answered"),
    ({"lag": 500, "last_progress": NOW - 120}, "500 events waiting"),
])
def test_an_unhealthy_worker_is_never_ready(changes: dict[str, object], words: str) -> None:
    verdict = ready(status(**changes))
    assert not verdict.healthy and words in verdict.reason


def test_no_status_file_is_not_ready() -> None:
    assert not ready(None).healthy


def test_a_worker_whose_output_topic_refuses_records_is_not_ready() -> None:
    verdict = ready(status(input_partitions=2,
                           output_error="output topic decisions does not exist"))
    assert not verdict.healthy
    assert "does not exist" in verdict.reason


def test_a_worker_on_lost_feature_state_is_alive_but_not_ready() -> None:
    lost = status(state_lost="missing: 16 of 16 sentinels missing")
    assert judge(lost).healthy, "liveness: restarting would not bring the state back"
    verdict = assess_readiness(lost, NOW, 10, 30, 20)
    assert not verdict.healthy
    assert "feature state lost (missing: 16 of 16" in verdict.reason
    assert "backfill" in verdict.reason
