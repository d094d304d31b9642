"""A flood above capacity: events arrive faster than one worker process decides them. Lag
must grow and then drain, and the worker's memory must stay bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.status import read_status
from tests.e2e.cli import worker_process
from tests.e2e.faults import outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

RSS_LIMIT_MB = 450


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_flood_above_capacity_drains_with_bounded_memory(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=4)
    frame = simulate(recent(28, customers=3000, terminals=6000))
    lags: list[int] = []
    rss: list[float] = []
    done = threading.Event()

    with worker_process(settings, tmp_path) as worker:
        def sample() -> None:
            while not done.wait(0.25) and worker.alive():
                rss.append(_rss_mb(worker.process.pid))
                current = read_status(worker.status)
                if current is not None:
                    lags.append(current.lag)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        flood_started = time.monotonic()
        sent = produce_frame(settings, frame)  # as fast as the producer goes
        flood_s = time.monotonic() - flood_started
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0,
                             timeout=240)
        drained_s = time.monotonic() - flood_started
        # The status file's lag is a statistics interval old: wait until it shows 0.
        wait_for(lambda: bool(lags) and lags[-1] == 0, lambda: f"the lag to drain: {lags[-5:]}",
                 timeout=30)
        done.set()
        sampler.join(5)
        assert worker.stop() == 0, worker.tail()
    result = outcome(frame, records)
    result.report("flood", produced_per_s=round(sent / flood_s),
                  decided_per_s=round(sent / drained_s), peak_lag=max(lags, default=-1),
                  final_lag=lags[-1] if lags else -1, peak_rss_mb=round(max(rss), 1))
    assert result.lost == 0
    assert max(lags) > 1000, "the flood never got ahead of the worker: not a flood"
    assert lags[-1] == 0, "the lag did not drain"
    assert max(rss) < RSS_LIMIT_MB
