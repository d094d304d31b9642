"""`fraudstream health` (the liveness probe) against real worker processes that are alive
but not working: a frozen loop (the worker SIGSTOPped, the broker untouched), and a loop
that keeps applying labels while its transactions stall. Each must fail the probe with
its own reason, and pass it again once the worker works."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.status import WorkerStatus
from tests.e2e.cli import WorkerProcess, run_cli, worker_process
from tests.e2e.faults import PacedLoad, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.kafka_proxy import KafkaProxy, proxied_broker
from tests.population import recent
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

MAX_AGE_S, MAX_STALL_S = 3, 3  # the probe's limits, short for the test


@pytest.fixture
def proxied() -> Iterator[tuple[str, KafkaProxy]]:
    with proxied_broker() as broker:
        yield broker


def _probe(settings: Settings, worker: WorkerProcess) -> tuple[int, str]:
    """One liveness probe: (exit code, its one line)."""
    result = run_cli(settings, "health", "--status-file", str(worker.status),
                     "--max-age", str(MAX_AGE_S), "--max-stall", str(MAX_STALL_S),
                     timeout=60)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, (result.stdout + result.stderr).strip()


def _wait_verdict(settings: Settings, worker: WorkerProcess, code: int,
                  timeout: float = 60, saying: str = "") -> str:
    """Until the probe exits with ``code`` (and a line ``saying`` that); its line."""
    answers: list[str] = []

    def answered() -> str | None:
        got, line = _probe(settings, worker)
        answers.append(line)
        return line if got == code and saying in line else None

    return wait_for(answered, lambda: f"health to exit {code}; it said {answers[-3:]}\n"
                                      f"{worker.tail()}", timeout, 0.2)


def test_a_frozen_worker_loop_fails_health_and_passes_once_thawed(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=2)
    frame = simulate(recent(1))
    with worker_process(settings, tmp_path) as worker:
        produce_frame(settings, frame)
        worker.wait_processed(len(frame))
        assert "events processed" in _wait_verdict(settings, worker, 0)
        worker.process.send_signal(signal.SIGSTOP)  # the worker, not the broker
        try:
            # A status written just before the freeze may still show events waiting (the
            # lag of its last fetch): the stall rule can fail the probe first, and the age
            # rule must then take over once the file is older than its limit.
            stuck = _wait_verdict(settings, worker, 1, saying="status not written")
        finally:
            worker.process.send_signal(signal.SIGCONT)
        healthy_again = _wait_verdict(settings, worker, 0)
        assert worker.stop() == 0, worker.tail()
    assert "status not written" in stuck and "the worker loop is stuck" in stuck, stuck
    assert "events processed" in healthy_again, healthy_again


def test_labels_flowing_do_not_hide_transactions_that_stall(
        settings: Settings, tmp_path: Path, proxied: tuple[str, KafkaProxy]) -> None:
    """Decisions undeliverable (the worker's producer held back by a proxy): consumption
    of transactions pauses while labels keep arriving and being applied. The loop is
    alive and writes its status, so only "lag without progress" can catch it: a label
    applied is not a batch processed."""
    bootstrap, proxy = proxied
    settings = settings.replace(kafka_bootstrap=bootstrap, producer_queue_messages=300)
    make_topics(settings, partitions=2)
    frame = simulate(recent(3))
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 30.0)
        # Labels keep coming (a few a second) for longer than the test waits for the
        # verdict: if they counted as progress, health would stay green throughout.
        labels = PacedLoad(settings, frame, rate=len(frame) / 120.0, labels=True)
        load.start()
        labels.start()
        try:
            worker.wait_processed(len(frame) // 10)
            assert "events processed" in _wait_verdict(settings, worker, 0)
            proxy.hold("fraudstream-producer")
            paused = worker.wait_status(lambda s: s.paused, "consumption to pause")
            stalled = _wait_verdict(settings, worker, 1, timeout=30)
            assert labels.is_alive() and labels.sent < len(frame), "labels stopped flowing"
            later = worker.wait_status(
                lambda s: s.labels > paused.labels and s.written_at > paused.written_at,
                "labels applied while transactions stall")
            proxy.release("fraudstream-producer")
            recovered = _wait_verdict(settings, worker, 0)
        finally:
            proxy.release("fraudstream-producer")
            load.halt()
            labels.halt()
        sent = load.finish()
        labels.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=1.0,
                             timeout=90)
        assert worker.stop() == 0, worker.tail()
    _report(paused, later)
    assert "events waiting and no batch processed" in stalled, stalled
    assert later.batches == paused.batches, "transactions moved while paused"
    assert later.labels > paused.labels
    assert "events processed" in recovered, recovered
    assert outcome(frame.iloc[:sent], records).lost == 0


def _report(paused: WorkerStatus, later: WorkerStatus) -> None:
    print(f"[liveness] while paused: labels {paused.labels} -> {later.labels}, "
          f"batches {paused.batches} -> {later.batches}, lag {later.lag}")
