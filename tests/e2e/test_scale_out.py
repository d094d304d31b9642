"""Scale out by partition: replicas as real processes, killed and drained mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.e2e.cli import start_cli
from tests.e2e.faults import PacedLoad, outcome, wrong_state
from tests.e2e.pool import PARTITIONS, stop, wait_all_assigned, wait_gone, wait_processed
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more



def test_three_processes_share_the_partitions_and_survive_a_sigkill(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(3))
    status_dir, log = tmp_path / "status", tmp_path / "pool.log"
    pool = start_cli(settings, "worker", "--processes", "3", "--status-dir", str(status_dir),
                     log=log)
    try:
        before = wait_all_assigned(status_dir, 3, settings, pool, log)
        load = PacedLoad(settings, frame, rate=len(frame) / 8.0)
        load.start()
        wait_processed(status_dir, len(frame) // 4, pool, log)  # well into the stream
        victim = next(iter(before.values())).pid
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_gone(victim)
        after = wait_all_assigned(status_dir, 3, settings, pool, log)
        recovered_s = time.monotonic() - killed_at
        assert victim not in {s.pid for s in after.values()}, "the killed replica is back"
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        assert stop(pool, log) == 0, log.read_text()
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    result = outcome(frame, records)
    result.report("sigkill one of three", recovery_s=round(recovered_s, 2))
    assert result.lost == 0, f"{result.lost} transactions never decided"
    assert result.decided == len(frame)
    assert wrong_state(settings, frame) == []


def test_sigterm_to_one_of_three_drains_commits_and_leaves_without_duplicates(
        settings: Settings, tmp_path: Path) -> None:
    """Scale-in: three replicas (as on three hosts), one is told to stop mid-stream."""
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(3))
    workers: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    try:
        for i in range(3):
            status, log = tmp_path / f"worker-{i}.json", tmp_path / f"worker-{i}.log"
            workers.append((start_cli(settings, "worker", log=log,
                                      env={"FRAUDSTREAM_STATUS_FILE": str(status)}),
                            status, log))
        wait_all_assigned(tmp_path, 3, settings, workers[0][0], workers[0][2])
        load = PacedLoad(settings, frame, rate=len(frame) / 8.0)
        load.start()
        wait_processed(tmp_path, len(frame) // 4, workers[0][0], workers[0][2])
        leaving, _, leaving_log = workers[0]
        asked = time.monotonic()
        code = stop(leaving, leaving_log, timeout=20)
        left_after_s = time.monotonic() - asked
        assert code == 0, leaving_log.read_text()
        assert left_after_s < 10, f"the worker took {left_after_s:.1f}s to leave"
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        for process, _, log in workers[1:]:
            assert stop(process, log) == 0, log.read_text()
    finally:
        for process, _, _ in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
    result = outcome(frame, records)
    result.report("sigterm one of three", left_after_s=round(left_after_s, 2))
    assert result.lost == 0
    assert result.duplicates == 0, "a drained worker's decisions were repeated"
    assert result.longest_gap_s < 10, "the others paused too long"
    assert wrong_state(settings, frame) == []
