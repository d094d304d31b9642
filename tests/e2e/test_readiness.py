"""`fraudstream health --ready`, the workers' readiness probe, on real worker processes:
not ready while joining, ready with partitions, ready standing by when workers outnumber
the partitions, not ready once shutting down."""

from __future__ import annotations

import time
from pathlib import Path

from fraudstream.settings import Settings
from stream.health import assess_readiness
from stream.status import read_status
from tests.e2e.cli import run_cli, start_cli
from tests.kafka_helpers import make_topics


def _ready(settings: Settings, status: Path) -> tuple[bool, str]:
    result = run_cli(settings, "health", "--ready", "--status-file", str(status), timeout=30)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0, result.stdout.strip()


def _until_ready(settings: Settings, status: Path, log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    answer = ""
    while time.monotonic() < deadline:
        ok, answer = _ready(settings, status)
        if ok:
            return answer
        time.sleep(0.3)
    raise AssertionError(f"never ready ({answer}):\n{log.read_text()[-3000:]}")


def _first_status(status: Path, log: Path, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = read_status(status)
        if current is not None:
            return current
        time.sleep(0.02)
    raise AssertionError(f"no status file:\n{log.read_text()[-3000:]}")


def test_readiness_follows_the_consumer_group(settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=1)
    statuses = [tmp_path / f"worker-{n}.json" for n in range(2)]
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    processes = [start_cli(settings, "worker", log=log,
                           env={"FRAUDSTREAM_STATUS_FILE": str(status)})
                 for status, log in zip(statuses, logs, strict=True)]
    try:
        for status, log in zip(statuses, logs, strict=True):
            # The first status is written before the group has answered: not ready yet.
            joining = assess_readiness(_first_status(status, log), time.time(), 10, 30, 30)
            assert not joining.healthy and "joining the consumer group" in joining.reason
        answers = [_until_ready(settings, status, log)
                   for status, log in zip(statuses, logs, strict=True)]
        # One partition, two workers: one processes it, the other stands by, both ready.
        working = [n for n, answer in enumerate(answers) if "processing 1 input" in answer]
        assert len(working) == 1, answers
        other = 1 - working[0]
        assert "standing by" in answers[other], answers

        processes[working[0]].terminate()
        assert processes[working[0]].wait(30) == 0, logs[working[0]].read_text()[-3000:]
        ok, answer = _ready(settings, statuses[working[0]])
        assert not ok and "shutting down" in answer, answer
        # The partition moves to the worker that stood by.
        deadline = time.monotonic() + 60
        while "processing 1 input partitions" not in answer:
            assert time.monotonic() < deadline, f"partition never moved: {answer}"
            time.sleep(0.3)
            _, answer = _ready(settings, statuses[other])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
