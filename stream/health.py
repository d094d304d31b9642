"""Is a worker healthy, and is it ready? Judged from its status file, so a probe needs no
broker access.

A worker that is alive but idle is the failure liveness exists for: a hung loop stops
writing its status, a silent broker shows in ``broker_silent_s``, and a consumer that
stalled while events wait shows as lag without progress. Readiness asks more: the worker
takes part in its consumer group, so it processes a share of the input now."""

from __future__ import annotations

from dataclasses import dataclass

from fraudstream.stream.status import WorkerStatus


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def assess(status: WorkerStatus | None, now: float, max_age_s: float, max_stall_s: float,
           max_broker_silence_s: float) -> Verdict:
    """``now`` is wall-clock seconds, like the status file's times."""
    if status is None:
        return Verdict(False, "no readable status file: the worker has not started or is gone")
    age = now - status.written_at
    if age > max_age_s:
        return Verdict(False, f"status not written for {age:.0f}s: the worker loop is stuck "
                              "or the process is gone")
    if status.stopping:
        return Verdict(False, "the worker is shutting down")
    if status.broker_silent_s > max_broker_silence_s:
        return Verdict(False, f"no broker answered for {status.broker_silent_s:.0f}s")
    stalled = now - status.last_progress
    if status.lag > 0 and stalled > max_stall_s:
        return Verdict(False, f"{status.lag} events waiting and no batch processed for "
                              f"{stalled:.0f}s")
    lag = "unknown" if status.lag < 0 else str(status.lag)
    return Verdict(True, f"{len(status.assigned)} partitions, lag {lag}, "
                         f"{status.events} events processed")


def assess_readiness(status: WorkerStatus | None, now: float, max_age_s: float,
                     max_stall_s: float, max_broker_silence_s: float) -> Verdict:
    """Ready: healthy (see ``assess``) and in its consumer group, holding input
    partitions or, with more workers than partitions, joined without any (an idle member
    stands by). A worker still joining is not ready; one that keeps its partitions
    through a cooperative rebalance stays ready."""
    alive = assess(status, now, max_age_s, max_stall_s, max_broker_silence_s)
    if not alive.healthy or status is None:
        return alive
    if status.output_error:
        return Verdict(False, status.output_error)
    if status.state_lost:
        return Verdict(False, f"feature state lost ({status.state_lost}): decisions flagged "
                              "degraded state_lost until a backfill rebuilds it")
    if status.paused:
        return Verdict(False, f"consumption paused: deliveries or state writes behind "
                              f"({status.state_backlog} events wait for the feature store)")
    if status.input_partitions > 0:
        return Verdict(True, f"processing {status.input_partitions} input partitions, "
                             f"{status.events} events so far")
    if status.group_state == "steady":
        return Verdict(True, "in the consumer group without input partitions (more workers "
                             "than partitions): standing by")
    state = status.group_state or "unknown"
    return Verdict(False, f"joining the consumer group (state {state}): no input partitions "
                          "yet")
