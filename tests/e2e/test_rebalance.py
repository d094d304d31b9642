"""Rebalance under steady load: 1 -> 4 -> 1 worker processes, one at a time, while events
keep coming. No decision may go missing; the pause each rebalance causes is measured."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from stream.decisions import decision_decoder
from tests.e2e.cli import start_cli, wait_assigned
from tests.e2e.faults import PacedLoad, double_counted_customers, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

STEP_S = 6.0  # also the window in which each change's pause is measured


def _longest_gap_after(stamps_ms: list[int], start_ms: float, window_s: float) -> float:
    inside = [s for s in stamps_ms if start_ms <= s <= start_ms + window_s * 1000]
    edges = [start_ms, *inside]
    return max((b - a for a, b in itertools.pairwise(edges)), default=window_s * 1000) / 1000


def test_one_to_four_to_one_loses_nothing_and_pauses_briefly(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=4)
    frame = simulate(recent(14))
    workers: list[subprocess.Popen[bytes]] = []
    changes: list[tuple[str, float]] = []  # (what, wall clock ms)

    def start(i: int) -> None:
        status, log = tmp_path / f"w{i}.json", tmp_path / f"w{i}.log"
        workers.append(start_cli(settings, "worker", log=log,
                                 env={"FRAUDSTREAM_STATUS_FILE": str(status)}))
        changes.append((f"join {i + 1}", time.time() * 1000))
        wait_assigned(workers[-1], status, log)

    try:
        start(0)
        # Steady load until the last change has had its window, however long joins take.
        load = PacedLoad(settings, frame, rate=len(frame) / 150.0)
        load.start()
        for i in range(1, 4):
            time.sleep(STEP_S)
            start(i)
        for i in range(3, 0, -1):
            time.sleep(STEP_S)
            changes.append((f"leave {i + 1}", time.time() * 1000))
            workers[i].send_signal(signal.SIGTERM)
            assert workers[i].wait(20) == 0, (tmp_path / f"w{i}.log").read_text()[-3000:]
        time.sleep(STEP_S)
        assert load.is_alive(), "the load ended before the last change was measured"
        load.halt()
        sent = load.finish(timeout=120)
        frame = frame.iloc[:sent]
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0,
                             timeout=90)
        workers[0].send_signal(signal.SIGTERM)
        assert workers[0].wait(20) == 0
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
    result = outcome(frame, records)
    stamps = sorted(decision_decoder.decode(r.value).scored_at for r in records)
    gaps = {what: round(_longest_gap_after(stamps, at, STEP_S), 2) for what, at in changes[1:]}
    result.report("rebalance 1-4-1", **{f"gap_{k.replace(' ', '_')}_s": v
                                        for k, v in gaps.items()})
    assert result.lost == 0
    assert double_counted_customers(settings, frame) == []
    # The 5 s target is reported above, not asserted (the machine is shared); a pause as
    # long as the whole window means decisions stopped.
    assert max(gaps.values()) < STEP_S, f"a rebalance stopped decisions: {gaps}"
