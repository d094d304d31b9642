"""The broker goes away: a worker process rides out a short outage, and a long one ends it
with exit code 4 (README: for its supervisor to restart it) instead of leaving it alive
and idle."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.e2e.cli import run_cli, worker_process
from tests.e2e.faults import PacedLoad, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

FROZEN_S = 5.0


@pytest.fixture
def own_broker() -> Iterator[tuple[str, services.ManagedProcess]]:
    bootstrap, process = services.start_tansu()
    yield bootstrap, process
    process.process.send_signal(signal.SIGCONT)
    process.stop()


def test_a_broker_frozen_for_five_seconds_is_ridden_out(
        settings: Settings, tmp_path: Path,
        own_broker: tuple[str, services.ManagedProcess]) -> None:
    bootstrap, broker = own_broker
    settings = settings.replace(kafka_bootstrap=bootstrap)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 12.0)
        load.start()
        worker.wait_processed(len(frame) // 4)  # well into the stream
        broker.process.send_signal(signal.SIGSTOP)
        time.sleep(FROZEN_S)  # the fault itself: the broker stays frozen this long
        assert worker.alive(), "the worker must wait for the broker, not die"
        broker.process.send_signal(signal.SIGCONT)
        thawed = time.monotonic()
        sent = load.finish(timeout=90)
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0,
                             timeout=90)
        resumed_s = time.monotonic() - thawed
        assert worker.stop() == 0, worker.tail()
    result = outcome(frame, records)
    result.report("broker frozen 5 s", all_decided_after_s=round(resumed_s, 2))
    assert result.lost == 0


def test_a_broker_gone_past_the_timeout_ends_the_worker_with_exit_code_4(
        settings: Settings, tmp_path: Path,
        own_broker: tuple[str, services.ManagedProcess]) -> None:
    bootstrap, broker = own_broker
    settings = settings.replace(kafka_bootstrap=bootstrap, broker_timeout_s=4.0)
    make_topics(settings, partitions=2)
    with worker_process(settings, tmp_path) as worker:
        status = str(worker.status)
        healthy = run_cli(settings, "health", "--status-file", status)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        broker.stop()
        gone = time.monotonic()
        # The worker ends 4 s after the last answer; its status says so before that.
        worker.wait_status(lambda s: s.broker_silent_s > 2, "a silent broker in the status",
                           timeout=30)
        unhealthy = run_cli(settings, "health", "--status-file", status,
                            "--max-broker-silence", "2")
        code = worker.process.wait(40)
        exited_after_s = time.monotonic() - gone
    print(f"[broker gone] exit_code={code} exited_after_s={exited_after_s:.1f}")
    assert code == 4, f"exit code {code}, README promises 4:\n{worker.tail()}"
    assert "no broker answered" in worker.log.read_text()
    assert unhealthy is not None and unhealthy.returncode == 1
    assert "no broker answered" in unhealthy.stdout
