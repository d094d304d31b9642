"""A worker process killed with SIGKILL mid-stream, with and without exactly-once: a new
worker of the same group reads again from the last committed offsets. Nothing is lost,
the state Redis is left with counts every transaction once, and every decision equals
the offline engine's, except the replays scored on a state that already counts later
events of their customer, which say so (``degraded: ["replay"]``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.e2e.cli import worker_process
from tests.e2e.faults import (
    PacedLoad,
    judged,
    wrong_state,
)
from tests.gaps import narrowed
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent
from tests.transactions_probe import ABORTED_VISIBLE, probe_transactions
from tests.waiting import wait_for

LOAD_S = 8.0
# Offsets are committed every few seconds: the kill lands after events that were decided
# and counted into the state but not committed, so the next worker reads them again.
COMMIT_INTERVAL_S = 4.0


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_parity_after_a_worker_killed_mid_batch(settings: Settings, tmp_path: Path,
                                                exactly_once: bool) -> None:
    # The restarted worker keeps the killed one's transactional.id (a StatefulSet pod's
    # name, say): it fences the open transaction at once instead of waiting for the
    # broker to time it out.
    settings = settings.replace(emit_features=True, commit_interval_s=COMMIT_INTERVAL_S,
                                transaction_interval_ms=int(COMMIT_INTERVAL_S * 1000),
                                transactional_id=f"{settings.group_id}-replica-0")
    args = ("--exactly-once",) if exactly_once else ()
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    load = PacedLoad(settings, frame, rate=len(frame) / LOAD_S)
    with worker_process(settings, tmp_path, *args, name="killed") as killed:
        load.start()
        killed.wait_processed(len(frame) // 3)
        os.kill(killed.process.pid, signal.SIGKILL)
        wait_for(lambda: not killed.alive(), "the killed worker to be gone", timeout=10)
    with worker_process(settings, tmp_path, *args, name="next") as successor:
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        assert successor.stop() == 0, successor.tail()
    _, result, worst = judged(frame, records)
    result.report(f"sigkill mid-batch, {'exactly-once' if exactly_once else 'at-least-once'}",
                  largest_feature_difference=worst)
    assert sent == len(frame)
    assert result.lost == 0, f"{result.lost} transactions never decided"
    assert result.replayed > 0, "no stale replay: the kill missed the uncommitted window"
    if not exactly_once:
        assert result.duplicates > 0, "at-least-once: the replays are decided again"
    elif probe_transactions(settings.kafka_bootstrap or "").hides_aborted:
        assert result.duplicates == 0, "a transaction was decided twice (read_committed)"
    else:
        narrowed("exactly one decision per transaction after a SIGKILL", ABORTED_VISIBLE,
                 "the parity of every decision not marked degraded, duplicates included")
    assert wrong_state(settings, frame) == [], "a replay was counted twice"
    assert worst <= 1e-9, "a decision not marked degraded differs from the offline engine"
