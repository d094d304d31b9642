"""Shared pieces of the end-to-end fault tests: paced load, the outcome of a run, state checks."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from confluent_kafka import Producer

from fraudstream.features.definitions import DAY_MS, FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.features.online import REPLAY
from fraudstream.settings import Settings
from fraudstream.simulator.streamer import label_message, transaction_messages
from fraudstream.stream.decisions import Decision, decision_decoder
from fraudstream.stream.kafka_config import producer_config
from fraudstream.stream.produce import produce_or_wait
from tests.kafka_helpers import Record
from tests.state_oracle import state_differences


class PacedLoad(threading.Thread):
    """Produces a frame's transactions (or, with ``labels``, their confirmed labels, dated
    now) at ``rate`` per second on a thread of its own."""

    def __init__(self, settings: Settings, frame: pd.DataFrame, rate: float,
                 labels: bool = False) -> None:
        super().__init__(name="test-load", daemon=True)
        self.settings, self.frame, self.rate, self.labels = settings, frame, rate, labels
        self.sent = 0
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def halt(self) -> None:
        """Stop sending (the frame need not be used up); ``finish`` then says how many."""
        self._halt.set()

    def run(self) -> None:
        try:
            # Its own client id: fault injection holds back the worker's producer only.
            producer = Producer({**producer_config(self.settings), "client.id": "test-load"})
            topic, messages = self._messages()
            started = time.monotonic()
            for key, value in messages:
                if self._halt.is_set():
                    break
                ahead = started + self.sent / self.rate - time.monotonic()
                if ahead > 0.005:
                    self._halt.wait(ahead)  # the pace, not a scenario phase
                produce_or_wait(producer, topic, value, key)
                producer.poll(0)
                self.sent += 1
            if producer.flush(30):
                raise RuntimeError("test load was not all delivered")
        except BaseException as exc:  # surfaced by finish()
            self.failure = exc

    def _messages(self) -> tuple[str, Iterator[tuple[bytes, bytes]]]:
        if not self.labels:
            return self.settings.topic_transactions, transaction_messages(self.frame)
        now_ms = int(time.time() * 1000)
        rows = self.frame[["transaction_id", "timestamp", "customer_id", "terminal_id",
                           "is_fraud"]].itertuples(index=False, name=None)
        return self.settings.topic_labels, ((str(row[2]).encode(), label_message(row, now_ms))
                                            for row in rows)

    def finish(self, timeout: float = 60) -> int:
        self.join(timeout)
        assert not self.is_alive(), "the load did not finish in time"
        if self.failure is not None:
            raise self.failure
        return self.sent


@dataclass
class Outcome:
    sent: int
    decided: int
    duplicates: int
    lost: int
    degraded: int
    replayed: int  # decisions marked degraded "replay": scored on a later state
    longest_gap_s: float

    def report(self, name: str, **extra: float) -> str:
        figures = {"sent": self.sent, "decided": self.decided,
                   "duplicates": self.duplicates, "lost": self.lost,
                   "degraded": self.degraded, "replayed": self.replayed,
                   "longest_gap_s": round(self.longest_gap_s, 2),
                   **extra}
        line = f"[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items())
        print(line)
        return line


def outcome(frame: pd.DataFrame, records: list[Record]) -> Outcome:
    decisions = [decision_decoder.decode(r.value) for r in records if r.value]
    counts = Counter(d.transaction_id for d in decisions)
    expected = {str(t) for t in frame["transaction_id"]}
    stamps = sorted(d.scored_at for d in decisions)
    gaps = [(b - a) / 1000.0 for a, b in itertools.pairwise(stamps)]
    return Outcome(
        sent=len(expected), decided=len(counts.keys() & expected),
        duplicates=sum(c - 1 for c in counts.values()),
        lost=len(expected - counts.keys()),
        degraded=sum(1 for d in decisions if d.degraded),
        replayed=sum(1 for d in decisions if REPLAY in d.degraded),
        longest_gap_s=max(gaps, default=0.0))


def judged(frame: pd.DataFrame, records: list[Record],
           ) -> tuple[list[Decision], Outcome, float]:
    """A fault run's decisions, its outcome, and the largest difference between a decision
    not marked degraded and the offline engine's features."""
    decisions = [decision_decoder.decode(r.value) for r in records]
    return decisions, outcome(frame, records), largest_feature_difference(frame, decisions)


def wrong_state(settings: Settings, frame: pd.DataFrame,
                labelled: pd.DataFrame | None = None) -> list[str]:
    """Every way the state left in Redis differs from the offline engine's over ``frame``
    (``tests.state_oracle``: each customer's day buckets of count and cents and its last
    event, each terminal's transactions and confirmed frauds per day), where only the
    frauds among ``labelled`` had a label sent (none by default). A replayed event counted
    twice, an update dropped or a label lost all show up here."""
    if labelled is None:
        return state_differences(settings, frame, labelled_until_day=-1)
    frauds = frame["transaction_id"].isin(labelled["transaction_id"]) & (frame["is_fraud"] == 1)
    return state_differences(settings, frame.assign(is_fraud=frauds.astype(int)),
                             labelled_until_day=int(frame["timestamp"].max() // DAY_MS))


def largest_feature_difference(frame: pd.DataFrame, decisions: list[Decision]) -> float:
    """The largest difference between a decision's features (emitted with
    ``emit_features``) and the offline engine's for the same transaction, over every
    decision made on real features (degraded ones used defaults by design). The frame
    has no labels sent, so the offline engine sees none either."""
    offline = compute_matrix(frame.drop(columns=["is_fraud"]))
    row_of = {str(t): i for i, t in enumerate(frame["transaction_id"])}
    worst = 0.0
    for decision in decisions:
        if decision.degraded or decision.features is None:
            continue
        online = np.array([decision.features[name] for name in FEATURE_NAMES])
        worst = max(worst, float(np.abs(online - offline[row_of[decision.transaction_id]])
                                 .max()))
    return worst
