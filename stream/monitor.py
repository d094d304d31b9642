"""``fraudstream monitor``: live model quality from the decisions and labels topics."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import msgspec
from confluent_kafka import Consumer, Message
from prometheus_client import CollectorRegistry, start_http_server

from fraudstream.settings import Settings
from stream.decisions import decision_decoder
from stream.events import Rejected, decode_label
from stream.kafka_config import downstream_consumer_config
from stream.metrics import QualityMetrics
from stream.poll import poll_available
from stream.quality import LiveQuality

log = logging.getLogger("fraudstream.monitor")

REPORT_EVERY_S = 1.0


class QualityMonitor:
    def __init__(self, settings: Settings, metrics: QualityMetrics, live: LiveQuality,
                 ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.live = live
        self.consumer = Consumer({**downstream_consumer_config(
            settings, f"{settings.group_id}-monitor"), "enable.auto.commit": True})
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        s = self.settings
        self.consumer.subscribe([s.topic_decisions, s.topic_labels])
        next_report = time.monotonic() + REPORT_EVERY_S
        try:
            while not self._stop.is_set():
                for message in poll_available(self.consumer.consume, 5000, 0.2):
                    if message.error() is None:
                        self._take(message)
                if time.monotonic() >= next_report:
                    self.report()
                    next_report = time.monotonic() + REPORT_EVERY_S
        finally:
            self.consumer.close()

    def _take(self, message: Message) -> None:
        try:
            if message.topic() == self.settings.topic_labels:
                label, _, _ = decode_label(message.value(), self.settings.max_event_bytes)
                self.live.add_label(label.transaction_id, label.is_fraud)
            else:
                decision = decision_decoder.decode(message.value() or b"")
                self.live.add_decision(decision.transaction_id, decision.score,
                                       decision.decision != "approve")
        except (Rejected, msgspec.MsgspecError) as exc:
            log.debug("skipped an unreadable record: %s", exc)

    def report(self) -> None:
        quality = self.live.measure()
        for measure in ("precision", "recall", "average_precision"):
            value = getattr(quality, measure)
            self.metrics.quality.labels(measure).set(float("nan") if value is None else value)
        self.metrics.labelled.set(quality.labelled)
        self.metrics.unmatched_labels.set(self.live.unmatched_labels)


def run_monitor(settings: Settings, window: int, max_decisions: int) -> int:
    registry = CollectorRegistry()
    monitor = QualityMonitor(settings, QualityMetrics.create(registry),
                             LiveQuality(max_decisions, window))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0", registry=registry)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        monitor.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("monitor started", extra={"topic": settings.topic_decisions})
    monitor.run()
    return 0
