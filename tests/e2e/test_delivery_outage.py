"""Decisions that cannot be delivered for a while: the worker's producer is held back by a
proxy in front of the broker. The worker must not crash on a full queue, must pause
consumption, must commit only what was delivered, and must lose nothing afterwards."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from stream.kafka_config import downstream_consumer_config
from tests.e2e.cli import start_cli
from tests.e2e.faults import PacedLoad, outcome
from tests.e2e.test_worker_process import _wait_assigned
from tests.kafka_helpers import make_topics, read_topic
from tests.kafka_proxy import KafkaProxy
from tests.population import recent

PARTITIONS = 4
OUTAGE_S = 6.0


@pytest.fixture
def proxied_broker() -> Iterator[tuple[str, KafkaProxy]]:
    """A broker whose advertised address is a proxy: every client goes through it."""
    upstream, front = services.free_port(), services.free_port()
    proxy = KafkaProxy(front, upstream)
    argv = [services.tansu_binary(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{upstream}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{front}",
            "--storage-engine", "memory://tansu/"]
    broker = services.start_process("tansu", argv, lambda: services.port_answers(upstream))
    try:
        yield f"127.0.0.1:{front}", proxy
    finally:
        proxy.close()
        broker.stop()


def _committed_and_delivered(settings: Settings) -> tuple[int, int]:
    """(input offsets the group committed, decisions in the output topic), summed."""
    reader = Consumer(downstream_consumer_config(settings, settings.group_id))
    try:
        committed = reader.committed([TopicPartition(settings.topic_transactions, p)
                                      for p in range(PARTITIONS)], timeout=10)
        delivered = sum(reader.get_watermark_offsets(
            TopicPartition(settings.topic_decisions, p), timeout=10)[1]
            for p in range(PARTITIONS))
    finally:
        reader.close()
    return sum(max(0, tp.offset) for tp in committed), delivered


def test_undeliverable_decisions_pause_consumption_and_lose_nothing(
        settings: Settings, tmp_path: Path, proxied_broker: tuple[str, KafkaProxy]) -> None:
    bootstrap, proxy = proxied_broker
    settings = settings.replace(kafka_bootstrap=bootstrap, producer_queue_messages=300)
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(4))
    status, log = tmp_path / "status.json", tmp_path / "worker.log"
    worker = start_cli(settings, "worker", log=log,
                       env={"FRAUDSTREAM_STATUS_FILE": str(status)})
    try:
        _wait_assigned(worker, status, log)
        load = PacedLoad(settings, frame, rate=len(frame) / 14.0)
        load.start()
        time.sleep(3.0)
        proxy.hold("fraudstream-producer")
        time.sleep(OUTAGE_S)
        committed, delivered = _committed_and_delivered(settings)
        assert worker.poll() is None, log.read_text()[-3000:]
        proxy.release("fraudstream-producer")
        released = time.monotonic()
        sent = load.finish(timeout=90)
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=2.0,
                             timeout=90)
        caught_up_s = time.monotonic() - released
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    result = outcome(frame, records)
    result.report("decisions undeliverable 6 s", committed_during=committed,
                  delivered_during=delivered, caught_up_s=round(caught_up_s, 2))
    text = log.read_text()
    assert committed <= delivered, "offsets were committed for undelivered decisions"
    assert "consumption paused" in text and "consumption resumed" in text, text[-3000:]
    assert "BufferError" not in text and "Traceback" not in text
    assert result.lost == 0
