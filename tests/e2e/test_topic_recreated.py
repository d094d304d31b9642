"""The transactions topic deleted and created again under its name, then new events: the
worker finds the new incarnation by its topic id, counts and logs it, and the features of
the new events keep counting (their offsets start again at 0 but are guarded as a new
generation), equal to the offline engine's over every event.

On a broker where a consumer dies when its topic is deleted (the embedded Tansu 0.6.0
with librdkafka 2.16: ``tests/topic_deletion_probe.py`` says why), no worker can live
through the deletion. There the worker runs under ``fraudstream worker --processes 1``,
whose supervisor restarts it as Kubernetes would: the test checks that it died of that
SIGSEGV once, and that the restarted worker finds, counts and logs the recreation; every
other check is the same."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from confluent_kafka.admin import AdminClient

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import admin_config
from fraudstream.stream.status import WorkerStatus
from fraudstream.topics import create_topics
from tests.e2e.cli import kill_if_running, start_cli, worker_process
from tests.e2e.faults import (
    largest_feature_difference,
    outcome,
    wrong_state,
)
from tests.e2e.pool import live_statuses, stop
from tests.gaps import narrowed
from tests.kafka_helpers import Record, make_topics, read_topic
from tests.metrics import scraped
from tests.population import recent
from tests.topic_deletion_probe import DELETION_KILLS_CONSUMERS, consumers_survive_topic_deletion
from tests.waiting import wait_for

PARTITIONS = 4
RECREATIONS = "fraudstream_topic_recreations_total"


@dataclass
class Run:
    records: list[Record]  # the decisions topic, whole
    recreations: dict[str, float]  # scraped from the worker that read the new incarnation
    log: str  # that worker's log


def _recreate(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    topic = settings.topic_transactions
    admin.delete_topics([topic])[topic].result(15)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, "the topic gone")
    create_topics(settings, PARTITIONS)


def _worker_lives_through_it(settings: Settings, frame: pd.DataFrame, tmp_path: Path) -> Run:
    half = len(frame) // 2
    with worker_process(settings, tmp_path) as worker:
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.5)
        _recreate(settings)
        produce_frame(settings, frame.iloc[half:])
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             settle=2.0, timeout=90)
        assert worker.alive(), f"exit {worker.process.poll()}: {worker.tail()}"
        recreations = scraped(settings.metrics_port, RECREATIONS)
        assert worker.stop() == 0, worker.tail()
    return Run(records, recreations, worker.log.read_text())


def _worker_restarted_by_its_supervisor(settings: Settings, frame: pd.DataFrame,
                                        tmp_path: Path) -> Run:
    half = len(frame) // 2
    status_dir, log = tmp_path / "workers", tmp_path / "workers.log"
    wanted = {f"{settings.topic_transactions}[{p}]" for p in range(PARTITIONS)}
    pool = start_cli(settings, "worker", "--processes", "1", "--status-dir", str(status_dir),
                     log=log)

    def holding_every_partition(other_than: int = 0) -> WorkerStatus:
        def found() -> WorkerStatus | None:
            assert pool.poll() is None, log.read_text()[-3000:]
            return next((s for s in live_statuses(status_dir).values()
                         if s.pid != other_than and wanted <= set(s.assigned)), None)
        return wait_for(found, lambda: f"a worker holding every partition:\n"
                                       f"{log.read_text()[-3000:]}", 60, 0.1)

    try:
        first = holding_every_partition()
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.5)
        _recreate(settings)
        produce_frame(settings, frame.iloc[half:])  # waiting while the worker is restarted
        restarted = holding_every_partition(other_than=first.pid)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             settle=2.0, timeout=90)
        recreations = scraped(settings.metrics_port, RECREATIONS)  # slot 0's port: restarted
        assert stop(pool, log) == 0
    finally:
        kill_if_running(pool)
    text = log.read_text()
    exits = re.findall(r"worker replica 0 \(pid (\d+)\) exited with (-?\d+); restarting", text)
    assert exits == [(str(first.pid), str(-signal.SIGSEGV))], (
        f"the probe's gap is one SIGSEGV of the worker reading the deleted topic; the "
        f"supervisor restarted {exits}:\n{text[-3000:]}")
    after = text.partition("; restarting")[2]
    assert re.search(rf"worker replica 0 started \(pid {restarted.pid}\)", after), text[-3000:]
    return Run(records, recreations, after)


def test_parity_after_the_transactions_topic_recreated(settings: Settings,
                                                       tmp_path: Path) -> None:
    survives, probed = consumers_survive_topic_deletion(settings.kafka_bootstrap or "")
    settings = settings.replace(emit_features=True, metrics_port=services.free_port())
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(3))
    if survives:
        run = _worker_lives_through_it(settings, frame, tmp_path)
        name = "transactions topic recreated"
    else:
        run = _worker_restarted_by_its_supervisor(settings, frame, tmp_path)
        name = "transactions topic recreated, worker restarted"
        narrowed("the worker reading the topic lives through its deletion and finds the "
                 "recreation while it runs",
                 f"{DELETION_KILLS_CONSUMERS}; probe: {probed}",
                 "it died of that SIGSEGV once, its supervisor restarted it, and the "
                 "restarted worker found, counted and logged the recreation; decisions, "
                 "features and state checked as in the full test")
    decisions = [decision_decoder.decode(r.value) for r in run.records]
    result = outcome(frame, run.records)
    worst = largest_feature_difference(frame, decisions)
    result.report(name, largest_feature_difference=worst)
    assert result.lost == 0 and result.duplicates == 0
    assert worst <= 1e-9, "features froze (or double counted) after the recreation"
    assert wrong_state(settings, frame) == []
    assert run.recreations == {"": 1.0}
    assert "was recreated" in run.log, run.log[-3000:]
