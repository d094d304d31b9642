"""A live view of decisions, read from the decisions topic like any downstream consumer."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import numpy as np
from confluent_kafka import Consumer, TopicPartition
from rich.table import Table

from fraudstream.settings import Settings
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import downstream_consumer_config
from fraudstream.stream.poll import consumed_at

WINDOW_S = 5.0


@dataclass
class PauseLog:
    """Gaps between consecutive decisions of each partition, by when they were scored: a
    rebalance shows up as a pause on the partitions that moved."""

    min_gap_s: float = 0.25
    last_ms: dict[int, int] = field(default_factory=dict)
    gaps: list[tuple[float, float, int]] = field(default_factory=list)  # wall s, partition

    def add(self, partition: int, scored_at_ms: int) -> None:
        last = self.last_ms.get(partition)
        if last is not None and scored_at_ms - last >= self.min_gap_s * 1000:
            self.gaps.append((last / 1000, scored_at_ms / 1000, partition))
        if last is None or scored_at_ms > last:
            self.last_ms[partition] = scored_at_ms

    def longest(self, start: float, end: float) -> float:
        """The longest gap overlapping ``start``..``end`` (wall clock seconds)."""
        return max((b - a for a, b, _ in self.gaps if b > start and a < end), default=0.0)


@dataclass
class DecisionStats:
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    degraded: int = 0
    invalid: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    recent: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    first_at: float | None = None
    last_at: float | None = None
    transaction_ids: set[str] = field(default_factory=set)
    pauses: PauseLog = field(default_factory=PauseLog)

    def add(self, raw: bytes | None, now: float, partition: int = -1) -> None:
        try:
            decision = decision_decoder.decode(raw or b"")
        except msgspec.MsgspecError:
            self.invalid += 1
            return
        self.total += 1
        self.transaction_ids.add(decision.transaction_id)
        self.pauses.add(partition, decision.scored_at)
        self.outcomes[decision.decision] += 1
        self.degraded += bool(decision.degraded)
        self.latencies_ms.append(decision.latency_ms)
        self.first_at = self.first_at or now
        self.last_at = now

    def tick(self, now: float) -> None:
        self.recent.append((now, self.total))
        while self.recent and self.recent[0][0] < now - WINDOW_S:
            self.recent.popleft()

    @property
    def current_rate(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def average_rate(self) -> float:
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return self.total / (self.last_at - self.first_at)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    @property
    def duplicates(self) -> int:
        return self.total - len(self.transaction_ids)

    def table(self, title: str = "fraudstream",
              extra: Iterable[tuple[str, str]] = ()) -> Table:
        table = Table(title=title, show_header=False, min_width=48)
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("elapsed", f"{time.monotonic() - self.started:.1f} s")
        table.add_row("decisions/s (last 5 s)", f"{self.current_rate:,.0f}")
        table.add_row("decisions", f"{self.total:,}")
        for outcome in ("approve", "review", "decline"):
            table.add_row(f"  {outcome}", f"{self.outcomes.get(outcome, 0):,}")
        table.add_row("degraded", f"{self.degraded:,}")
        table.add_row("in-worker latency p50", f"{self.percentile(50):.3f} ms")
        table.add_row("in-worker latency p99", f"{self.percentile(99):.3f} ms")
        for figure, value in extra:
            table.add_row(figure, value)
        return table

    def summary(self) -> str:
        return (f"{self.total} decisions at {self.average_rate:,.0f} events/s; "
                f"in-worker latency p50 {self.percentile(50):.3f} ms, "
                f"p99 {self.percentile(99):.3f} ms; "
                + ", ".join(f"{k} {self.outcomes.get(k, 0)}"
                            for k in ("approve", "review", "decline")))


class DecisionReader:
    """Reads decisions produced from now on, on every partition, without a group join."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        config = downstream_consumer_config(settings, f"fraudstream-console-{time.time_ns()}")
        self._consumer = Consumer(config)
        # Resolve "now" before any decision is produced: OFFSET_END would be resolved
        # lazily, after the first decisions, and miss them.
        starts = []
        for p in range(partitions):
            tp = TopicPartition(settings.topic_decisions, p)
            _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            starts.append(TopicPartition(settings.topic_decisions, p, high))
        self._consumer.assign(starts)

    def poll_into(self, stats: DecisionStats, timeout: float = 0.2) -> None:
        now = time.monotonic()
        for message in self._consumer.consume(2000, timeout):
            if message.error() is None:
                stats.add(message.value(), now, consumed_at(message)[1])
        stats.tick(time.monotonic())

    def close(self) -> None:
        self._consumer.close()
