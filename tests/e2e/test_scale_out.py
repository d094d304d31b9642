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
from stream.status import WorkerStatus, read_status
from tests.e2e.cli import start_cli
from tests.e2e.faults import PacedLoad, double_counted_customers, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

PARTITIONS = 4


def _statuses(directory: Path) -> dict[str, WorkerStatus]:
    found = {}
    for path in sorted(directory.glob("worker-*.json")):
        status = read_status(path)
        if status is not None:
            found[path.name] = status
    return found


def _wait_all_assigned(directory: Path, replicas: int, settings: Settings,
                       process: subprocess.Popen[bytes], log: Path,
                       timeout: float = 90) -> dict[str, WorkerStatus]:
    """Until ``replicas`` live workers hold every input partition, each exactly once, and
    each worker holds some (labels have their own group: they cannot crowd them out)."""
    wanted = {f"{settings.topic_transactions}[{p}]" for p in range(PARTITIONS)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        statuses = _statuses(directory)
        live = {n: s for n, s in statuses.items() if _alive(s.pid) and not s.stopping}
        held = [p for s in live.values() for p in s.assigned
                if p.startswith(settings.topic_transactions + "[")]
        each_has_some = all(any(p.startswith(settings.topic_transactions + "[")
                                for p in s.assigned) for s in live.values())
        if (len(live) == replicas and set(held) == wanted and len(held) == len(wanted)
                and each_has_some):
            return live
        time.sleep(0.1)
    raise AssertionError(f"replicas never shared the partitions: {_statuses(directory)}\n"
                         f"{log.read_text()[-3000:]}")


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"pid {pid} still running"


def _stop(process: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"did not stop within {timeout}s:\n{log.read_text()}") from None


def test_three_processes_share_the_partitions_and_survive_a_sigkill(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(3))
    status_dir, log = tmp_path / "status", tmp_path / "pool.log"
    pool = start_cli(settings, "worker", "--processes", "3", "--status-dir", str(status_dir),
                     log=log)
    try:
        before = _wait_all_assigned(status_dir, 3, settings, pool, log)
        load = PacedLoad(settings, frame, rate=len(frame) / 8.0)
        load.start()
        time.sleep(3.0)
        victim = next(iter(before.values())).pid
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        _wait_gone(victim)
        after = _wait_all_assigned(status_dir, 3, settings, pool, log)
        recovered_s = time.monotonic() - killed_at
        assert victim not in {s.pid for s in after.values()}, "the killed replica is back"
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        assert _stop(pool, log) == 0, log.read_text()
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    result = outcome(frame, records)
    result.report("sigkill one of three", recovery_s=round(recovered_s, 2))
    assert result.lost == 0, f"{result.lost} transactions never decided"
    assert result.decided == len(frame)
    assert double_counted_customers(settings, frame) == []


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
        _wait_all_assigned(tmp_path, 3, settings, workers[0][0], workers[0][2])
        load = PacedLoad(settings, frame, rate=len(frame) / 8.0)
        load.start()
        time.sleep(3.0)
        leaving, _, leaving_log = workers[0]
        asked = time.monotonic()
        code = _stop(leaving, leaving_log, timeout=20)
        left_after_s = time.monotonic() - asked
        assert code == 0, leaving_log.read_text()
        assert left_after_s < 10, f"the worker took {left_after_s:.1f}s to leave"
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        for process, _, log in workers[1:]:
            assert _stop(process, log) == 0, log.read_text()
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
    assert double_counted_customers(settings, frame) == []
