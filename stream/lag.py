"""Consumer-group lag of the input topic, measured from outside the group.

Lag is the high watermark minus the group's committed offset, per partition. The high
watermark comes from fetch responses, never from ListOffsets: some brokers (Tansu) answer
ListOffsets wrongly when producers batch, but every fetch response carries the right high
watermark. So the observer is a consumer of its own, assigned to the end of every partition
(it never joins the group, never commits), fetching at most one small record batch per
partition per fetch just to keep those responses coming. Committed offsets come from an
OffsetFetch for the workers' group."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import common_config

log = logging.getLogger(__name__)

_DRAIN_BATCH = 10_000


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    high: int  # high watermark from the latest fetch response
    committed: int | None  # the group's committed offset; None when it has none yet
    low: int = 0  # where a group without a committed offset starts (earliest)

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.low
        return max(0, self.high - start)


@dataclass(frozen=True)
class LagSample:
    at: float  # time.monotonic() of the measurement
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def produced(self) -> int:
        """Sum of the high watermarks: every record ever appended to the topic."""
        return sum(p.high for p in self.partitions)

    def by_partition(self) -> dict[int, int]:
        return {p.partition: p.lag for p in self.partitions}


def observer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    return {
        **common_config(settings),
        # The group is named only for OffsetFetch: an assign()-only consumer never joins it,
        # and with auto-commit off it never commits to it.
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
        # One record batch per partition per fetch: the response's watermark is what we
        # want, not the records (Tansu ignores the limit and sends all; they are dropped).
        # The wait paces the fetches (Tansu holds each one this long).
        "max.partition.fetch.bytes": 1,
        "fetch.wait.max.ms": 200,
        # A full fetch queue would postpone the next fetch by fetch.queue.backoff.ms, and
        # the watermarks would age by as much.
        "queued.max.messages.kbytes": 65536,
        "fetch.queue.backoff.ms": 50,
        "logger": logging.getLogger("fraudstream.kafka.lag"),
    }


class LagObserver:
    """Lag per partition of ``topic`` for consumer group ``group_id``."""

    def __init__(self, settings: Settings, topic: str | None = None,
                 group_id: str | None = None, timeout: float = 10.0) -> None:
        self.topic = topic or settings.topic_transactions
        self.group_id = group_id or settings.group_id
        self._consumer = Consumer(observer_config(settings, self.group_id))
        metadata = self._consumer.list_topics(self.topic, timeout=timeout).topics[self.topic]
        if metadata.error is not None:
            self._consumer.close()
            raise KafkaException(metadata.error)
        self.partitions = len(metadata.partitions)
        self._tps = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
        self._consumer.assign([TopicPartition(self.topic, tp.partition, OFFSET_END)
                               for tp in self._tps])

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Until a fetch response has brought every partition's high watermark."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._consumer.consume(_DRAIN_BATCH, 0.05)
            if all(high >= 0 for _, high in self._watermarks()):
                return True
        return False

    def sample(self, timeout: float = 5.0) -> LagSample | None:
        """Lag now; None when the broker did not answer or a watermark is not known yet."""
        self.drain()
        try:
            committed = self._consumer.committed(self._tps, timeout=timeout)
        except KafkaException as exc:
            log.warning("committed offsets of group %s unavailable: %s", self.group_id, exc)
            return None
        # Watermarks read after the commits (the round trip may have brought fresher
        # ones): a watermark older than a commit understates the lag (clamped at 0).
        watermarks = self._watermarks()
        if any(high < 0 for _, high in watermarks):
            return None
        offsets = {tp.partition: tp.offset for tp in committed}
        partitions = tuple(
            PartitionLag(tp.partition, high,
                         offsets[tp.partition] if offsets.get(tp.partition, -1) >= 0 else None,
                         max(low, 0))
            for tp, (low, high) in zip(self._tps, watermarks, strict=True))
        return LagSample(time.monotonic(), partitions)

    def drain(self) -> None:
        """Drop the records fetched so far, so the fetcher never stops for a full queue.
        Cheap; call it between samples too when the topic is busy."""
        consume = self._consumer.consume
        while len(consume(_DRAIN_BATCH, 0)) == _DRAIN_BATCH:
            pass

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> LagObserver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _watermarks(self) -> list[tuple[int, int]]:
        return [self._consumer.get_watermark_offsets(tp, cached=True) for tp in self._tps]
