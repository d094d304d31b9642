"""Stream simulated transactions to Kafka at a steady rate or along a daily curve, labels
after a delay."""

from __future__ import annotations

import collections
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import msgspec
import pandas as pd
from confluent_kafka import Producer

from fraudstream.settings import Settings
from fraudstream.simulator.generator import SimulationConfig, iter_days
from fraudstream.stream.kafka_config import producer_config
from fraudstream.stream.kafka_errors import ClientErrors
from fraudstream.stream.produce import produce_or_wait

_encode = msgspec.json.Encoder().encode
LABEL_CHOICES = ("all", "fraud", "none")
PROFILE_CHOICES = ("flat", "daily")

RateProfile = Callable[[float], float]
"""Seconds since the stream started -> multiple of the base rate (> 0)."""

# (hour of the day, multiple of the base rate): a quiet night, a morning ramp, a midday
# peak at four times the base, an afternoon at the base, an evening fall back to night.
DAILY_CURVE = ((0.0, 0.25), (6.0, 0.25), (9.0, 1.0), (12.0, 4.0), (15.0, 1.0), (20.0, 1.0),
               (24.0, 0.25))


def daily_profile(duration_s: float) -> RateProfile:
    """One day compressed into ``duration_s`` seconds, cosine-eased between the points of
    ``DAILY_CURVE`` (smooth, and flat at each point, so the peak lasts a while)."""
    if duration_s <= 0:
        raise ValueError("duration must be > 0")

    def multiple(elapsed_s: float) -> float:
        hour = min(max(elapsed_s / duration_s, 0.0), 1.0) * 24.0
        for (h0, m0), (h1, m1) in itertools.pairwise(DAILY_CURVE):
            if hour <= h1:
                eased = (1.0 - math.cos(math.pi * (hour - h0) / (h1 - h0))) / 2.0
                return m0 + (m1 - m0) * eased
        return DAILY_CURVE[-1][1]

    return multiple


def rate_profile(name: str, duration_s: float) -> RateProfile | None:
    """The named profile; None for flat (a steady rate)."""
    if name not in PROFILE_CHOICES:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_CHOICES)}")
    return daily_profile(duration_s) if name == "daily" else None


def send_offsets(rate: float, duration_s: float,
                 profile: RateProfile | None = None) -> Iterator[float]:
    """When each event is due, in seconds from the start: ``rate`` a second, times
    ``profile(elapsed)`` when given, for ``duration_s`` seconds."""
    if profile is None:
        for n in range(int(rate * duration_s)):
            yield n / rate
        return
    due = 0.0
    while due < duration_s:
        yield due
        multiple = profile(due)
        if not multiple > 0:
            raise ValueError(f"rate profile gave {multiple} at {due:.3f}s; it must be > 0")
        due += 1.0 / (rate * multiple)


def stream_days(events: float, customers: int, max_days: int) -> int:
    """Simulated days a stream of ``events`` covers, so that starting that many days ago
    its event times end before now (customers average about two transactions a day;
    under-estimating keeps them past)."""
    return min(max_days, math.ceil(events / (1.8 * customers)) + 1)


def planned_events(rate: float, duration_s: float, profile: RateProfile | None = None) -> int:
    return sum(1 for _ in send_offsets(rate, duration_s, profile))


@dataclass
class StreamStats:
    transactions: int = 0
    labels: int = 0
    frauds: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s > 0 else 0.0


def transaction_messages(frame: pd.DataFrame) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per row: key is the customer id, value the JSON event."""
    columns = zip(frame["transaction_id"].tolist(), frame["timestamp"].tolist(),
                  frame["customer_id"].tolist(), frame["terminal_id"].tolist(),
                  frame["amount"].tolist(), strict=True)
    for tx_id, ts, customer, terminal, amount in columns:
        key = str(customer).encode()
        yield key, _encode({"transaction_id": str(tx_id), "timestamp": int(ts),
                            "customer_id": str(customer), "terminal_id": str(terminal),
                            "amount": float(amount), "currency": "EUR"})


def label_message(row: tuple[int, int, int, int, int], label_time_ms: int) -> bytes:
    tx_id, ts, customer, terminal, fraud = row
    return _encode({"transaction_id": str(tx_id), "customer_id": str(customer),
                    "terminal_id": str(terminal), "timestamp": int(ts),
                    "label_time": label_time_ms, "is_fraud": bool(fraud)})


def produce_all(producer: Producer, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce as fast as the client takes them, waiting on a full queue."""
    sent = 0
    for key, value in messages:
        produce_or_wait(producer, topic, value, key)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    return sent


def produce_frame(settings: Settings, frame: pd.DataFrame, timeout: float = 60.0) -> int:
    """Produce every row of a simulated frame to the transactions topic, in order."""
    errors = ClientErrors()
    producer = Producer({**producer_config(settings), "error_cb": errors})
    sent = produce_all(producer, settings.topic_transactions, transaction_messages(frame))
    if producer.flush(timeout):
        errors.raise_if_refused()
        raise RuntimeError("transactions were not all delivered")
    return sent


def stream(settings: Settings, config: SimulationConfig, rate: float, duration_s: float,
           label_delay_s: float = 5.0, labels: str = "all",
           stop: threading.Event | None = None,
           progress: Callable[[StreamStats], None] | None = None,
           profile: RateProfile | None = None, first_day: int = 0) -> StreamStats:
    """Send about ``rate`` transactions a second for ``duration_s`` seconds, the rate
    scaled by ``profile`` over time when one is given (``daily_profile``).

    Each transaction's confirmed label follows ``label_delay_s`` seconds later on the
    labels topic (all labels, only frauds, or none). Event timestamps are simulated time,
    so features see realistic histories however fast the stream runs. ``first_day``: the
    simulated days before it are history, not streamed (ids continue after them)."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be > 0")
    if labels not in LABEL_CHOICES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_CHOICES)}")
    stop = stop or threading.Event()
    errors = ClientErrors()  # a refused login or TLS handshake ends the stream at once
    producer = Producer({**producer_config(settings), "error_cb": errors})
    pending_labels: collections.deque[tuple[float, bytes, bytes]] = collections.deque()
    stats = StreamStats()
    schedule = send_offsets(rate, duration_s, profile)
    days = iter_days(config, first_day=first_day)
    opening = next(days, None)  # generated before the clock starts: no catch-up burst
    started = time.monotonic()
    last_report = started

    def send(topic: str, value: bytes, key: bytes) -> None:
        errors.raise_if_refused()
        produce_or_wait(producer, topic, value, key)

    def flush_labels(now: float) -> None:
        while pending_labels and pending_labels[0][0] <= now:
            _, key, value = pending_labels.popleft()
            send(settings.topic_labels, value, key)
            stats.labels += 1

    finished = False
    for day in itertools.chain([opening] if opening is not None else [], days):
        messages = transaction_messages(day)
        rows = zip(day["transaction_id"].tolist(), day["timestamp"].tolist(),
                   day["customer_id"].tolist(), day["terminal_id"].tolist(),
                   day["is_fraud"].tolist(), strict=True)
        for (key, value), row in zip(messages, rows, strict=True):
            offset = next(schedule, None)
            if offset is None or stop.is_set():
                finished = True
                break
            now = time.monotonic()
            due = started + offset
            while due > now and not stop.is_set():  # poll() returns early on deliveries
                producer.poll(min(due - now, 0.05))
                now = time.monotonic()
            send(settings.topic_transactions, value, key)
            stats.transactions += 1
            stats.frauds += row[4]
            if labels == "all" or (labels == "fraud" and row[4]):
                label_ms = int(time.time() * 1000 + label_delay_s * 1000)
                pending_labels.append((now + label_delay_s, key, label_message(row, label_ms)))
            flush_labels(now)
            if progress and now - last_report >= 0.5:
                stats.elapsed_s = now - started
                progress(stats)
                last_report = now
        if finished:
            break
    stats.elapsed_s = time.monotonic() - started
    while pending_labels and not stop.is_set():
        producer.poll(0.05)
        flush_labels(time.monotonic())
    producer.flush(30)
    if progress:
        progress(stats)
    return stats
