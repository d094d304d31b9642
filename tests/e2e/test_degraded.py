"""Degraded mode end to end: a worker process keeps deciding while its Redis hangs, and
once Redis is back the feature state is exactly what the offline engine computes from the
same events: the updates of the outage were kept in order and written, none dropped."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.stream.decisions import decision_decoder
from tests.e2e.cli import run_cli, worker_process
from tests.e2e.faults import (
    PacedLoad,
    judged,
    largest_feature_difference,
    outcome,
    wrong_state,
)
from tests.kafka_helpers import make_topics, read_topic
from tests.metrics import scraped
from tests.population import recent
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

OUTAGE_S = 5.0


@pytest.fixture
def own_redis() -> Iterator[tuple[str, services.ManagedProcess]]:
    """A Redis of this test alone: it is frozen mid-stream."""
    url, process = services.start_redis()
    yield url, process
    process.process.send_signal(signal.SIGCONT)
    process.stop()


def test_parity_after_redis_frozen(
        settings: Settings, tmp_path: Path,
        own_redis: tuple[str, services.ManagedProcess]) -> None:
    """Redis frozen (SIGSTOP) for 5 s mid-stream, then resumed; the labels of the events
    decided so far arrive while it is frozen."""
    url, redis_server = own_redis
    settings = settings.replace(redis_url=url, emit_features=True)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    labelled = frame.iloc[: len(frame) // 4]
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 12.0)
        load.start()
        worker.wait_processed(len(labelled))  # well into the stream
        redis_server.process.send_signal(signal.SIGSTOP)
        frozen_ms = time.time() * 1000
        labels = PacedLoad(settings, labelled, rate=len(labelled) / (OUTAGE_S / 2),
                           labels=True)
        labels.start()
        time.sleep(OUTAGE_S)  # the fault itself: Redis stays frozen this long
        redis_server.process.send_signal(signal.SIGCONT)
        thawed_ms = time.time() * 1000
        labels_sent = labels.finish()
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        # The labels read during the outage are written once Redis answers (a label is
        # applied after its transaction's own state, so this waits for the last of them).
        wait_for(lambda: wrong_state(settings, frame, labelled) == [],
                 lambda: f"the state to settle: {wrong_state(settings, frame, labelled)[:5]}",
                 30, 0.5)
        assert worker.stop() == 0, worker.tail()
    decisions = sorted((decision_decoder.decode(r.value) for r in records),
                       key=lambda d: d.scored_at)
    during = [d for d in decisions if frozen_ms + 500 < d.scored_at < thawed_ms]
    normal_again = [d.scored_at for d in decisions
                    if d.scored_at > thawed_ms and not d.degraded]
    recovery_s = (normal_again[0] - thawed_ms) / 1000 if normal_again else float("inf")
    result = outcome(frame, records)
    worst = largest_feature_difference(frame, decisions)
    frauds = int(labelled["is_fraud"].sum())
    result.report("redis frozen 5 s", recovery_s=round(recovery_s, 2),
                  decided_during_outage=len(during), labels_during_outage=labels_sent,
                  frauds_labelled=frauds, largest_feature_difference=worst)
    assert labels_sent == len(labelled) and frauds > 0
    assert wrong_state(settings, frame, labelled) == [], \
        "the state of the outage's events or labels was dropped or counted twice"
    assert worst <= 1e-9, "a decision after the outage was scored on incomplete state"
    assert result.lost == 0
    assert result.duplicates == 0
    assert during, "decisions must continue while Redis hangs"
    assert all(d.degraded == ["features"] for d in during)
    assert recovery_s < 5, "the breaker must close by itself soon after Redis is back"
    assert decisions[-1].degraded == [], "decisions after the outage use real features"
    text = worker.log.read_text()
    assert "circuit open" in text and "circuit closed" in text, text[-3000:]


BACKLOG_BOUND = 300


def test_parity_after_redis_frozen_past_the_state_backlog_bound(
        settings: Settings, tmp_path: Path,
        own_redis: tuple[str, services.ManagedProcess]) -> None:
    """Redis frozen until more events wait for it than the bound allows: the worker pauses
    consumption instead of dropping any (status, readiness and metric say so), and once
    Redis is back it writes them all in order and resumes."""
    url, redis_server = own_redis
    metrics_port = services.free_port()
    settings = settings.replace(redis_url=url, emit_features=True, metrics_port=metrics_port,
                                state_backlog_max_events=BACKLOG_BOUND)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 12.0)
        load.start()
        worker.wait_processed(len(frame) // 5)
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            paused = worker.wait_status(lambda s: s.paused, "consumption to pause", 30)
            ready = run_cli(settings, "health", "--ready", "--status-file",
                            str(worker.status), timeout=30)
            gauge = scraped(metrics_port, "fraudstream_consumption_paused")
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        resumed = worker.wait_status(lambda s: not s.paused and s.state_backlog == 0,
                                     "consumption to resume", 60)
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        assert worker.stop() == 0, worker.tail()
    _, result, worst = judged(frame, records)
    result.report("redis frozen past the backlog bound", backlog_when_paused=paused.state_backlog,
                  largest_feature_difference=worst)
    assert paused.state_backlog > BACKLOG_BOUND
    assert ready.returncode == 1 and "consumption paused" in ready.stdout, ready.stdout
    assert gauge == {"": 1.0}
    assert resumed.events >= paused.events
    assert result.lost == 0 and result.duplicates == 0
    assert wrong_state(settings, frame) == [], "an update of the outage was dropped"
    assert worst <= 1e-9
    text = worker.log.read_text()
    assert "consumption paused" in text and "consumption resumed" in text, text[-3000:]
