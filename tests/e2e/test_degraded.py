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
from tests.e2e.cli import worker_process
from tests.e2e.faults import (
    PacedLoad,
    double_counted_customers,
    largest_feature_difference,
    outcome,
    wrong_terminal_counts,
)
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent

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
    """Redis frozen (SIGSTOP) for 5 s mid-stream, then resumed."""
    url, redis_server = own_redis
    settings = settings.replace(redis_url=url, emit_features=True)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    with worker_process(settings, tmp_path) as worker:
        load = PacedLoad(settings, frame, rate=len(frame) / 12.0)
        load.start()
        worker.wait_processed(len(frame) // 4)  # well into the stream
        redis_server.process.send_signal(signal.SIGSTOP)
        frozen_ms = time.time() * 1000
        time.sleep(OUTAGE_S)  # the fault itself: Redis stays frozen this long
        redis_server.process.send_signal(signal.SIGCONT)
        thawed_ms = time.time() * 1000
        sent = load.finish()
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
        assert worker.stop() == 0, worker.tail()
    decisions = sorted((decision_decoder.decode(r.value) for r in records),
                       key=lambda d: d.scored_at)
    during = [d for d in decisions if frozen_ms + 500 < d.scored_at < thawed_ms]
    normal_again = [d.scored_at for d in decisions
                    if d.scored_at > thawed_ms and not d.degraded]
    recovery_s = (normal_again[0] - thawed_ms) / 1000 if normal_again else float("inf")
    result = outcome(frame, records)
    worst = largest_feature_difference(frame, decisions)
    result.report("redis frozen 5 s", recovery_s=round(recovery_s, 2),
                  decided_during_outage=len(during),
                  largest_feature_difference=worst)
    assert double_counted_customers(settings, frame) == [], \
        "the state of the outage's events was dropped or counted twice"
    assert wrong_terminal_counts(settings, frame) == []
    assert worst <= 1e-9, "a decision after the outage was scored on incomplete state"
    assert result.lost == 0
    assert result.duplicates == 0
    assert during, "decisions must continue while Redis hangs"
    assert all(d.degraded == ["features"] for d in during)
    assert recovery_s < 5, "the breaker must close by itself soon after Redis is back"
    assert decisions[-1].degraded == [], "decisions after the outage use real features"
    text = worker.log.read_text()
    assert "circuit open" in text and "circuit closed" in text, text[-3000:]
