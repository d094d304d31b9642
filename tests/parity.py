"""Streaming a simulated frame through a worker the way the offline engine assumes, and
reading back what the worker scored and stored: shared by the parity tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from confluent_kafka import Producer

from fraudstream.features.definitions import DAY_MS, FEATURE_NAMES, LABEL_DELAY_DAYS
from fraudstream.features.online import FEATURES_DEGRADED
from fraudstream.settings import Settings
from fraudstream.simulator.streamer import label_message, produce_all, transaction_messages
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import producer_config
from fraudstream.stream.worker import Worker
from tests.kafka_helpers import read_topic
from tests.waiting import wait_for


def label_messages(frame: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    rows = zip(frame["transaction_id"].tolist(), frame["timestamp"].tolist(),
               frame["customer_id"].tolist(), frame["terminal_id"].tolist(),
               frame["is_fraud"].tolist(), strict=True)
    return [(str(row[2]).encode(), label_message(row, int(time.time() * 1000)))
            for row in rows]


def stream_day_by_day(settings: Settings, worker: Worker, frame: pd.DataFrame,
                      labelled: pd.DataFrame | None = None, already: int = 0) -> None:
    """Each day's transactions, then the labels that are 7 days old (taken from
    ``labelled``, default ``frame``), each fully processed before the next is sent.
    ``already``: events the worker handled before this call."""
    producer = Producer(producer_config(settings))
    labelled = frame if labelled is None else labelled
    day = (frame["timestamp"] // DAY_MS).to_numpy()
    labelled_day = (labelled["timestamp"] // DAY_MS).to_numpy()
    sent = labels = 0
    labels_before = worker.labels_applied
    for today in np.unique(day):
        # Kafka orders nothing across topics: wait until the labels are applied.
        due = labelled[labelled_day == today - LABEL_DELAY_DAYS]
        labels += produce_all(producer, settings.topic_labels, label_messages(due))
        assert producer.flush(30) == 0
        wait_for(lambda target=labels: worker.labels_applied - labels_before >= target,
                 f"labels before {today}")
        todays = frame[day == today]
        sent += produce_all(producer, settings.topic_transactions,
                            transaction_messages(todays))
        assert producer.flush(30) == 0
        wait_for(lambda target=already + sent + labels: worker.events >= target,
                 f"day {today}")
        # and its state write in the store (a small one goes with the next read, or when
        # the worker finds nothing more to read)
        wait_for(lambda: worker.core.settled, f"the state writes of day {today}")


class Scored(dict[str, list[float]]):
    """transaction id -> the features its decision was scored on (``emit_features``), for
    every decision made on the store's features; ``on_defaults`` holds the ids decided on
    default features (degraded "features": the store did not answer in time, which a
    loaded machine can cause), which are not the engine's features by design. Their state
    work is kept and written later: the state left in Redis is exact whatever they are."""

    on_defaults: set[str]


def scored_features(settings: Settings, expect: int) -> Scored:
    """Every decision's features (see ``Scored``); no transaction decided twice."""
    records = read_topic(settings, settings.topic_decisions, expect=expect, timeout=180)
    scored = Scored()
    scored.on_defaults = set()
    for record in records:
        decision = decision_decoder.decode(record.value)
        assert decision.features is not None
        assert decision.transaction_id not in scored, "duplicate decision"
        assert decision.transaction_id not in scored.on_defaults, "duplicate decision"
        if FEATURES_DEGRADED in decision.degraded:
            scored.on_defaults.add(decision.transaction_id)
        else:
            scored[decision.transaction_id] = [decision.features[n] for n in FEATURE_NAMES]
    return scored


def state_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    """The customer and terminal states' keys under ``prefix`` (not the bookkeeping beside
    them: the epoch's sentinels, whose sequence every check advances, the topic identity)."""
    return sorted(k for kind in ("c", "t")
                  for k in client.scan_iter(match=f"{prefix}:{kind}:*", count=1000))


def snapshot(settings: Settings) -> dict[bytes, bytes]:
    """Every customer and terminal state of the settings' prefix and its value."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = state_keys(client, settings.redis_prefix)
        return dict(zip(keys, client.mget(keys), strict=True))
    finally:
        client.close()


def history_file(path: Path, history: pd.DataFrame,
                 coordinates: dict[str, tuple[int, int]] | None = None) -> Path:
    """``history`` as a file backfill reads (Parquet, or CSV by the name), with each
    row's place in the transactions topic when ``coordinates`` are given."""
    columns = {"transaction_id": history["transaction_id"].astype(str),
               "timestamp": history["timestamp"],
               "customer_id": history["customer_id"].astype(str),
               "terminal_id": history["terminal_id"].astype(str),
               "amount": history["amount"], "is_fraud": history["is_fraud"]}
    if coordinates is not None:
        places = [coordinates[t] for t in columns["transaction_id"]]
        columns["partition"] = pd.Series([p for p, _ in places], dtype="int64")
        columns["offset"] = pd.Series([o for _, o in places], dtype="int64")
    table = pd.DataFrame(columns)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path)
    return path
