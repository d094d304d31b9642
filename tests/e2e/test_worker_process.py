"""`fraudstream worker` as a process: signals drain, commit and exit 0; restarts resume."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.e2e.cli import start_cli, wait_assigned
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_commits_and_a_restart_resumes_without_duplicates(
        settings: Settings, tmp_path: Path, stop_signal: signal.Signals) -> None:
    make_topics(settings, partitions=4)
    frame = simulate(recent(4))
    half = len(frame) // 2
    status = tmp_path / "status.json"
    env = {"FRAUDSTREAM_STATUS_FILE": str(status)}

    first_log = tmp_path / "worker-1.log"
    worker = start_cli(settings, "worker", log=first_log, env=env)
    try:
        wait_assigned(worker, status, first_log)
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.2)
        worker.send_signal(stop_signal)
        started = time.monotonic()
        code = worker.wait(timeout=20)
        assert code == 0, first_log.read_text()
        assert time.monotonic() - started < 10, "shutdown must be quick"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "worker stopped" in first_log.read_text()

    produce_frame(settings, frame.iloc[half:])
    second_log = tmp_path / "worker-2.log"
    status.unlink()
    worker = start_cli(settings, "worker", log=second_log, env=env)
    try:
        wait_assigned(worker, status, second_log)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             settle=2.0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, second_log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    ids = [decision_decoder.decode(r.value).transaction_id for r in records]
    assert len(ids) == len(frame), f"{len(frame)} sent, {len(ids)} decisions"
    assert len(set(ids)) == len(frame), "a clean restart must not repeat decisions"
