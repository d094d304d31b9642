"""Redis data loss end to end: a worker process whose Redis is killed and restarted empty
mid-stream finds the loss by the state's epoch, says so by metric, log and readiness, and
goes on deciding: no decision is missing, those made on state from before the loss equal
the offline engine's, and every later one is flagged degraded until ``fraudstream backfill
--from-topics``, run while the worker goes on, rebuilds the state and says so; the state
left in Redis is then the offline engine's over every event."""

from __future__ import annotations

import time
from pathlib import Path

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.state_epoch import STATE_LOST
from fraudstream.stream.status import read_status
from tests.e2e.cli import run_cli, worker_process
from tests.e2e.faults import PacedLoad, largest_feature_difference, outcome, wrong_state
from tests.kafka_helpers import make_topics, read_topic
from tests.metrics import scraped
from tests.population import recent
from tests.waiting import wait_for

DOWN_S = 1.0


def test_parity_after_redis_restarted_empty(settings: Settings, tmp_path: Path) -> None:
    """Redis killed (SIGKILL) mid-stream and restarted empty on the same port."""
    url, first = services.start_redis()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    second: services.ManagedProcess | None = None
    metrics_port = services.free_port()
    settings = settings.replace(redis_url=url, emit_features=True, metrics_port=metrics_port)
    make_topics(settings, partitions=4)
    frame = simulate(recent(3))
    try:
        with worker_process(settings, tmp_path) as worker:
            assert scraped(metrics_port, "fraudstream_feature_state_lost") == {"": 0.0}
            load = PacedLoad(settings, frame, rate=len(frame) / 10.0)
            load.start()
            wait_for(lambda: (now := read_status(worker.status)) is not None
                     and now.events > 300, "decisions before the loss")
            first.process.kill()
            first.process.wait()
            killed_ms = time.time() * 1000
            time.sleep(DOWN_S)
            _, second = services.start_redis(port=port)
            restarted_ms = time.time() * 1000
            wait_for(lambda: (now := read_status(worker.status)) is not None
                     and bool(now.state_lost), "the loss in the worker's status", timeout=30)
            ready = run_cli(settings, "health", "--ready", "--status-file",
                            str(worker.status), timeout=30)
            lost_gauge = scraped(metrics_port, "fraudstream_feature_state_lost")
            losses = scraped(metrics_port, "fraudstream_feature_state_losses_total")
            sent = load.finish()
            records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0)
            rebuild = run_cli(settings, "backfill", "--from-topics", timeout=120)
            assert rebuild.returncode == 0, rebuild.stdout + rebuild.stderr
            wait_for(lambda: (now := read_status(worker.status)) is not None
                     and not now.state_lost, "the worker to see the rebuild", timeout=30)
            rebuilt = run_cli(settings, "health", "--ready", "--status-file",
                              str(worker.status), timeout=30)
            cleared = scraped(metrics_port, "fraudstream_feature_state_lost")
            differences = wrong_state(settings, frame)
            assert worker.stop() == 0, worker.tail()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    decisions = sorted((decision_decoder.decode(r.value) for r in records),
                       key=lambda d: d.scored_at)
    after = [d for d in decisions if d.scored_at > restarted_ms]
    flagged = [d for d in decisions if STATE_LOST in d.degraded]
    result = outcome(frame, records)
    worst = largest_feature_difference(frame, decisions)
    result.report("redis restarted empty", largest_feature_difference=worst,
                  flagged_state_lost=len(flagged), decided_after_restart=len(after),
                  state_differences_after_rebuild=len(differences))
    assert differences == [], differences[:5]
    assert result.lost == 0 and result.duplicates == 0
    assert worst <= 1e-9, "a decision on state from after the loss was not flagged"
    assert after and all(d.degraded for d in after), \
        "every decision after the restart is flagged (features down, or state lost)"
    assert flagged and all(d.scored_at > killed_ms for d in flagged)
    assert decisions[-1].degraded == [STATE_LOST], "Redis is up: real features, flagged"
    assert ready.returncode == 1 and "feature state lost (missing:" in ready.stdout, \
        ready.stdout + ready.stderr
    assert lost_gauge == {"": 1.0}
    assert losses['kind="missing"'] == 1.0 and losses['kind="replaced"'] == 0.0
    assert "feature state lost: missing:" in worker.log.read_text(), worker.tail()
    assert rebuilt.returncode == 0 and cleared == {"": 0.0}
    assert "feature state rebuilt" in worker.log.read_text()
