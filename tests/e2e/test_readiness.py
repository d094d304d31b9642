"""`fraudstream health --ready`, the workers' readiness probe, on real worker processes:
not ready while joining, ready with partitions, ready standing by when workers outnumber
the partitions, not ready once shutting down."""

from __future__ import annotations

import time
from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.stream.health import assess_readiness
from fraudstream.stream.status import WorkerStatus, read_status
from tests.e2e.cli import run_cli, start_cli
from tests.kafka_helpers import make_topics
from tests.waiting import wait_for


def _ready(settings: Settings, status: Path) -> tuple[bool, str]:
    result = run_cli(settings, "health", "--ready", "--status-file", str(status), timeout=30)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0, result.stdout.strip()


def _until_ready(settings: Settings, status: Path, log: Path, timeout: float = 60,
                 words: str = "") -> str:
    """Until the probe says ready (with ``words`` in its answer); that answer."""
    answers = [""]

    def ready() -> str | None:
        ok, answers[0] = _ready(settings, status)
        return answers[0] if ok and words in answers[0] else None

    return wait_for(ready, lambda: f"ready {words} ({answers[0]}):\n"
                                   f"{log.read_text()[-3000:]}", timeout, 0.3)


def _first_status(status: Path, log: Path, timeout: float = 60) -> WorkerStatus:
    return wait_for(lambda: read_status(status), lambda: f"a status file:\n{log.read_text()}",
                    timeout)


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
        _until_ready(settings, statuses[other], logs[other], words="processing 1 input")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
