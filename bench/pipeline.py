"""One implementation of the pipeline, run as its own process and measured from outside.

Throughput: the implementation drains a backlog of pre-produced events; its rate is the
output count over the span of their arrival at a reader. In-worker latency: for the
fraudstream worker, its own ``fraudstream_event_latency_seconds`` histogram (decode to
produce, per event), scraped from its /metrics before and after the measured events; the
peers, which have no such histogram, from their decisions' ``latency_ms``. End to end is
an output's arrival at the reader minus its input record's timestamp, in a run paced
below capacity. Output record timestamps are not used:
some frameworks (Quix Streams) copy the input's. Memory: peak RSS (VmHWM).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from fraudstream.bench.quix_env import package_view
from fraudstream.services import free_port
from fraudstream.settings import Settings
from fraudstream.simulator.streamer import transaction_messages
from fraudstream.stream.kafka_config import downstream_consumer_config, producer_config
from fraudstream.stream.poll import poll_available
from fraudstream.stream.produce import produce_or_wait
from fraudstream.top import Snapshot, histogram_percentiles, scrape
from fraudstream.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
_decode = msgspec.json.Decoder(dict).decode


@dataclass(frozen=True)
class Implementation:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    max_events: int | None = None  # slow peers are measured on a prefix of the backlog
    cwd: Path = ROOT  # the Quix peer's: where no checkout folder shadows its package view
    serves_metrics: bool = False  # has fraudstream's /metrics (in-worker latency histogram)


@dataclass
class Measurement:
    name: str
    events: int = 0
    rate: float = 0.0
    in_worker_p50_ms: float | None = None
    in_worker_p99_ms: float | None = None
    end_to_end_p50_ms: float | None = None
    end_to_end_p99_ms: float | None = None
    end_to_end_rate: float | None = None
    paced_in_worker_p99_ms: float | None = None
    paced_rate: float | None = None
    in_worker_p99_ms_at_2000: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""


def implementations(quix_python: str | None) -> list[Implementation]:
    python = sys.executable
    found = [
        Implementation("fraudstream worker", [python, "-m", "fraudstream", "worker"],
                       serves_metrics=True),
        Implementation("naive per-event", [python, "-m", "fraudstream.bench.naive"],
                       max_events=3000),
        Implementation("faust agent",
                       [python, "-m", "fraudstream.stream.faust_app", "worker", "-l", "warn"],
                       max_events=30_000),
        Implementation("passthrough (ceiling)", [python, "-m", "fraudstream.bench.passthrough"]),
    ]
    if quix_python:
        view = package_view()
        found.insert(3, Implementation(
            "quix streams app", [quix_python, "-m", "fraudstream.bench.quix_app"],
            env={"PYTHONPATH": str(view)}, max_events=60_000, cwd=view))
    return found


def isolated(settings: Settings, name: str, source: str | None = None) -> Settings:
    """Settings for one measured run: topics, consumer group and Redis keys of its own, so
    runs never see each other's events or feature state. ``source`` keeps an input topic."""
    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    return settings.replace(topic_transactions=source or f"{unique}-in",
                            topic_decisions=f"{unique}-out", topic_dlq=f"{unique}-dlq",
                            topic_labels=f"{unique}-labels", topic_shadow=f"{unique}-shadow",
                            group_id=unique,
                            redis_prefix=unique)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Running:
    """An implementation's process, stopped and reaped on exit."""

    def __init__(self, impl: Implementation, settings: Settings, log: Path) -> None:
        self.metrics_url: str | None = None
        if impl.serves_metrics:
            port = free_port()
            settings = settings.replace(metrics_port=port)
            self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        env = settings.child_environ()
        env.update(impl.env)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(impl.argv, env=env, cwd=impl.cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.peak_rss_mb: float | None = None

    def scrape(self) -> Snapshot | None:
        """The implementation's /metrics now; None where it serves none."""
        if self.metrics_url is None:
            return None
        snapshot = scrape([self.metrics_url])
        if not snapshot.workers_up:
            raise RuntimeError(f"{self.metrics_url} did not answer")
        return snapshot

    def sample(self) -> None:
        rss = _peak_rss_mb(self.process.pid)
        if rss is not None:
            self.peak_rss_mb = max(rss, self.peak_rss_mb or 0.0)

    def stop(self) -> None:
        self.sample()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _reader(settings: Settings, topic: str) -> Consumer:
    """A consumer of every partition of ``topic`` from its beginning, outside any group.
    Its fetch wait is short: the reader's own delay must not count as the measured one's."""
    consumer = Consumer({**downstream_consumer_config(settings, f"bench-{uuid.uuid4().hex}"),
                         "fetch.wait.max.ms": 5})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer


@dataclass
class Outputs:
    records: list[tuple[float, bytes | None]]  # (reader arrival time ms, value)
    stamped_span_ms: float  # span of the records' own timestamps


def read_outputs(settings: Settings, topic: str, expect: int, timeout: float,
                 tick: Callable[[int], None] | None = None) -> Outputs:
    """The first ``expect`` records of ``topic``, with the reader's wall clock at arrival."""
    consumer = _reader(settings, topic)
    records: list[tuple[float, bytes | None]] = []
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            batch = poll_available(consumer.consume, 5000, 0.02)
            now_ms = time.time() * 1000.0
            for message in batch:
                if message.error() is None:
                    records.append((now_ms, message.value()))
                    stamps.append(message.timestamp()[1])
            if tick:
                tick(len(records))
    finally:
        consumer.close()
    span = float(max(stamps[:expect]) - min(stamps[:expect])) if stamps else 0.0
    return Outputs(records[:expect], span)


def produce_frame(settings: Settings, topic: str, frame: pd.DataFrame,
                  rate: float | None = None, producer: Producer | None = None) -> None:
    """Produce the frame's events, as fast as possible or paced at ``rate`` per second.
    Pass a ``producer`` that has already delivered: a new one holds its first events
    until it is connected and has its producer id (about half a second), and that wait
    would be charged to the implementation measured."""
    producer = producer or Producer(producer_config(settings))
    started = time.monotonic()
    for sent, (key, value) in enumerate(transaction_messages(frame)):
        if rate:
            # Sleep between 5 ms slices: a busy-waiting producer would take a core from
            # the implementation it measures.
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0.005:
                time.sleep(ahead)
                producer.poll(0)
        produce_or_wait(producer, topic, value, key)
        if sent % 2000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("benchmark events were not all delivered")


def _input_times(settings: Settings, expect: int) -> list[tuple[str, float]]:
    """(transaction id, record timestamp ms) of the paced inputs, as the producer set them."""
    consumer = _reader(settings, settings.topic_transactions)
    found: list[tuple[str, float]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for message in consumer.consume(5000, 0.05):
                if message.error() is None:
                    found.append((_decode(message.value() or b"{}")["transaction_id"],
                                  float(message.timestamp()[1])))
    finally:
        consumer.close()
    return found


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


def _in_worker(before: Snapshot | None, after: Snapshot | None,
               decisions: list[dict[str, object]]) -> tuple[float | None, float | None]:
    """In-worker (p50, p99) ms of the events between two scrapes: from the worker's own
    histogram where it serves one, else from the decisions' ``latency_ms``."""
    if after is not None:
        return histogram_percentiles(before or Snapshot(0.0), after,
                                     "fraudstream_event_latency_seconds")
    return _percentiles(_latencies(decisions))


def _latencies(decisions: list[dict[str, object]]) -> list[float]:
    # arg-type: decisions read back as JSON: latency_ms is a number
    return [float(d["latency_ms"]) for d in decisions if "latency_ms" in d]  # type: ignore[arg-type]


def _sampling(running: Running, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(0.5):
            running.sample()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def measure_backlog(impl: Implementation, settings: Settings, source: str, events: int,
                    workdir: Path, timeout: float,
                    tick: Callable[[int], None] | None = None) -> Measurement:
    run_settings = isolated(settings, "bench", source)
    create_topics(run_settings, 4)
    expect = min(events, impl.max_events or events)
    running = Running(impl, run_settings, workdir / f"{impl.name.split()[0]}-backlog.log")
    stop = threading.Event()
    _sampling(running, stop)
    try:
        outputs = read_outputs(run_settings, run_settings.topic_decisions, expect, timeout,
                               tick)
        scraped = running.scrape()
    finally:
        stop.set()
        running.stop()
    records = outputs.records
    result = Measurement(impl.name, events=len(records), peak_rss_mb=running.peak_rss_mb)
    if len(records) < 2:
        result.note = f"produced {len(records)} outputs in {timeout:.0f}s"
        return result
    # Arrival spans undercount drains faster than the reader polls; record timestamps may
    # be the inputs' (Quix Streams copies them). The longer span is the honest one.
    span = max(records[-1][0] - records[0][0], outputs.stamped_span_ms) / 1000.0
    result.rate = len(records) / span if span > 0 else 0.0
    result.in_worker_p50_ms, result.in_worker_p99_ms = _in_worker(
        None, scraped, [_decode(v or b"{}") for _, v in records])
    if len(records) < expect:
        result.note = f"only {len(records)} of {expect} outputs within {timeout:.0f}s"
    elif expect < events:
        result.note = f"measured on the first {expect} events"
    return result


def measure_paced(impl: Implementation, settings: Settings, frame: pd.DataFrame, rate: float,
                  workdir: Path, timeout: float) -> tuple[float | None, float | None,
                                                          float | None, float | None]:
    """(end-to-end p50, p99, in-worker p50, p99) in ms at ``rate`` events per second."""
    run_settings = isolated(settings, "bench-paced")
    create_topics(run_settings, 4)
    running = Running(impl, run_settings, workdir / f"{impl.name.split()[0]}-paced.log")
    try:
        producer = Producer(producer_config(run_settings))
        produce_frame(run_settings, run_settings.topic_transactions, frame.iloc[:1],
                      producer=producer)  # warms the producer and the implementation
        if len(read_outputs(run_settings, run_settings.topic_decisions, 1, 60).records) < 1:
            return None, None, None, None
        warmed = running.scrape()  # the warm-up event is not one of the measured
        collected: list[Outputs] = []
        reader = threading.Thread(target=lambda: collected.append(read_outputs(
            run_settings, run_settings.topic_decisions, len(frame), timeout)))
        reader.start()  # reads while the events go in: arrival times are live
        produce_frame(run_settings, run_settings.topic_transactions, frame.iloc[1:], rate,
                      producer)
        reader.join(timeout + 5)
        measured_until = running.scrape()
        outputs = collected[0].records if collected else []
        inputs = _input_times(run_settings, len(frame))
    finally:
        running.stop()
    warm_up_id = str(frame["transaction_id"].iloc[0])
    sent_at = {tx: t for tx, t in inputs if tx != warm_up_id}
    measured = [(t, d) for t, v in outputs
                if (d := _decode(v or b"{}")).get("transaction_id") in sent_at]
    e2e = _percentiles([t - sent_at[d["transaction_id"]] for t, d in measured])
    worker = _in_worker(warmed, measured_until, [d for _, d in measured])
    return e2e[0], e2e[1], worker[0], worker[1]
