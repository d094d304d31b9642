"""``fraudstream monitor``: live model quality from the decisions and labels topics."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable
from types import FrameType

import msgspec
import redis
from confluent_kafka import Consumer, Message
from prometheus_client import CollectorRegistry, start_http_server

from fraudstream.errors import ConfigError
from fraudstream.security import redis_auth
from fraudstream.settings import Settings
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.events import Rejected, decode_label, decoded_id
from fraudstream.stream.kafka_config import downstream_consumer_config
from fraudstream.stream.metrics import QualityMetrics
from fraudstream.stream.poll import poll_available
from fraudstream.stream.quality import LiveQuality
from fraudstream.stream.quality_store import RedisLiveQuality

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0
Live = LiveQuality | RedisLiveQuality


class QualityMonitor:
    def __init__(self, settings: Settings, metrics: QualityMetrics, live: Live) -> None:
        self.settings = settings
        self.metrics = metrics
        self.live = live
        # At least once: a record's offset is stored only after its batch is joined, and
        # the join ignores records it has joined before (stream.quality_store).
        self.consumer = Consumer({**downstream_consumer_config(
            settings, f"{settings.group_id}-monitor"), "enable.auto.commit": True,
            "enable.auto.offset.store": False})
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        s = self.settings
        self.consumer.subscribe([s.topic_decisions, s.topic_labels])
        next_report = time.monotonic() + REPORT_EVERY_S
        try:
            while not self._stop.is_set():
                self._take(poll_available(self.consumer.consume, 5000, 0.2))
                if time.monotonic() >= next_report:
                    self.report()
                    next_report = time.monotonic() + REPORT_EVERY_S
        finally:
            self.consumer.close()

    def _take(self, messages: Iterable[Message]) -> None:
        """One batch of both topics, joined in one call to the live store; then their
        offsets are stored for the next commit."""
        decisions: list[tuple[str, float, bool, str]] = []
        labels: list[tuple[str, bool]] = []
        last: dict[tuple[str, int], Message] = {}
        for message in messages:
            if message.error() is not None:
                continue
            last[(message.topic() or "", message.partition() or 0)] = message
            try:
                if message.topic() == self.settings.topic_labels:
                    label, _, _ = decode_label(message.value(), self.settings.max_event_bytes)
                    labels.append((decoded_id(label.transaction_id), label.is_fraud))
                else:
                    decision = decision_decoder.decode(message.value() or b"")
                    decisions.append((decision.transaction_id, decision.score,
                                      decision.decision != "approve", decision.model_version))
            except (Rejected, msgspec.MsgspecError) as exc:
                log.debug("skipped an unreadable record: %s", exc)
        if decisions or labels:
            self.live.add(decisions, labels)
        for message in last.values():
            self.consumer.store_offsets(message=message)

    def report(self) -> None:
        quality = self.live.measure()
        for measure in ("precision", "recall", "average_precision"):
            value = getattr(quality, measure)
            self.metrics.quality.labels(measure).set(float("nan") if value is None else value)
        self.metrics.labelled.set(quality.labelled)
        self.metrics.unmatched_labels.set(self.live.unmatched_labels)
        for version, by_version in self.live.measure_by_version().items():
            for measure in ("precision", "recall", "average_precision"):
                value = getattr(by_version, measure)
                self.metrics.model_quality.labels(version, measure).set(
                    float("nan") if value is None else value)
            self.metrics.model_labelled.labels(version).set(by_version.labelled)


def live_quality(settings: Settings, window: int, max_decisions: int,
                 horizon_days: float) -> Live:
    """The join in Redis when one is configured (it outlives label delays and restarts),
    else in memory, bounded by ``max_decisions``."""
    if not settings.redis_url:
        log.warning("no Redis configured: the decision/label join is kept in memory, "
                    "bounded and lost on restart")
        return LiveQuality(max_decisions, window)
    if settings.redis_cluster:
        raise ConfigError("the monitor keeps its join on one Redis, not a cluster: point "
                          "FRAUDSTREAM_REDIS_URL at a single server for it")
    client = redis.Redis.from_url(settings.redis_url, **redis_auth(settings).client_kwargs())
    return RedisLiveQuality(client, horizon_days, window, prefix=f"{settings.redis_prefix}:q:")


def run_monitor(settings: Settings, window: int, max_decisions: int,
                horizon_days: float = 30.0) -> int:
    registry = CollectorRegistry()
    monitor = QualityMonitor(settings, QualityMetrics.create(registry),
                             live_quality(settings, window, max_decisions, horizon_days))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0", registry=registry)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        monitor.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("monitor started", extra={"topic": settings.topic_decisions})
    monitor.run()
    return 0
