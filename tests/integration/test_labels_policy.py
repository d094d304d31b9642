"""Labels get the transactions' failure policy (real broker and Redis): a hostile label is
dead-lettered with its reason and the worker goes on; and a label batch that made no
Redis call (no frauds in it) never closes the feature store's circuit breaker."""

from __future__ import annotations

import json
import time

import numpy as np
from prometheus_client import CollectorRegistry

from fraudstream.features.online import LabelBatch
from fraudstream.settings import Settings
from fraudstream.stream.app import build_worker
from tests.hostile_corpus import corpus, produce_with_aiokafka
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.waiting import wait_for

HOSTILE = ("ignored field nested 1,000 deep (2 KB)", "value of 1.2 MB",
           "key of 2 MB and value of 2 MB", "invalid UTF-8 in an id", "5,000-digit integer id",
           "random bytes", "no value (null)")


def _label(n: int, now: int) -> bytes:
    return json.dumps({"transaction_id": f"l{n}", "customer_id": "c", "terminal_id": "m",
                       "timestamp": now - 86_400_000, "label_time": now,
                       "is_fraud": False}).encode()


def test_hostile_labels_are_dead_lettered_and_the_worker_goes_on(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    cases = {case.name: case for case in corpus()}
    now = int(time.time() * 1000)
    messages: list[tuple[bytes | None, bytes | None]] = []
    for n, name in enumerate(HOSTILE):
        messages.append((cases[name].key, cases[name].value))
        messages.append((b"c", _label(n, now)))
    with running_worker(settings) as worker:
        produce_with_aiokafka(settings.kafka_bootstrap or "", settings.topic_labels, messages,
                              2)
        dead = read_topic(settings, settings.topic_dlq, expect=len(HOSTILE), settle=1.0)
        wait_for(lambda: worker.labels_applied >= len(HOSTILE), "the valid labels applied", 30)
        assert worker.labels_applied == len(HOSTILE)
    assert len(dead) == len(HOSTILE)
    assert all(r.headers.get("error") and r.headers["source.topic"].decode()
               == settings.topic_labels for r in dead)
    assert any("too deeply nested" in r.headers["error"].decode() for r in dead)
    assert all(len(r.value or b"") + len(r.key or b"") <= settings.producer_max_message_bytes
               for r in dead)


def test_labels_without_frauds_never_close_an_open_breaker(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    worker = build_worker(settings.replace(breaker_reset_s=0.01), CollectorRegistry())
    try:
        breaker = worker.breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()
        assert breaker.state == "open"
        time.sleep(0.02)  # the probe is due
        legit = LabelBatch(["a"], ["m"], np.array([int(time.time() * 1000)]),
                           np.array([False]))
        worker._apply_labels(legit, lambda: None)
        assert breaker.state == "open", "no Redis call was made: nothing proved it is up"
        fraud = LabelBatch(["b"], ["m"], np.array([int(time.time() * 1000)]),
                           np.array([True]))
        worker._apply_labels(fraud, lambda: None)
        assert breaker.state == "closed", "a real answer from Redis closes it"
    finally:
        worker.follower.stop() if worker.follower else None
        worker.consumer.close()
        worker.labels.consumer.close()
