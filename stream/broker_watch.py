"""Notice a broker that stopped answering, and the consumer's lag, from librdkafka's
statistics.

Every response from any broker counts (``rx``): fetches come back every
``fetch.wait.max.ms`` even on an idle stream, heartbeats every heartbeat interval. A
broker that is gone, or alive but not answering (no connection error for a frozen
process until requests time out), shows up as a count that stops moving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from fraudstream.errors import FraudstreamError


class BrokerUnavailable(FraudstreamError):
    """No broker answered for longer than the configured timeout."""

    exit_code = 4


class BrokerWatch:
    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._responses = -1
        self.last_answer = clock()
        self.lag = -1  # events behind the high watermarks of the assigned partitions
        self.lags: dict[tuple[str, int], int] = {}  # the same, per partition
        self.group_state = ""  # librdkafka's consumer group join state ("steady": joined)

    def on_stats(self, raw: str) -> None:
        """librdkafka ``stats_cb``: called from poll/consume on the worker's thread."""
        stats = json.loads(raw)
        responses = int(stats.get("rx", 0))
        if responses != self._responses:
            self._responses = responses
            self.last_answer = self._clock()
        self.lags = partition_lags(stats)
        self.lag = sum(self.lags.values()) if self.lags else -1
        self.group_state = group_join_state(stats)

    def silent_for(self) -> float:
        return self._clock() - self.last_answer

    def check(self) -> None:
        silent = self.silent_for()
        if silent > self.timeout_s:
            raise BrokerUnavailable(
                f"no broker answered for {silent:.0f}s (FRAUDSTREAM_BROKER_TIMEOUT_S is "
                f"{self.timeout_s:g}); exiting so that a supervisor restarts this worker")


def partition_lags(stats: dict[str, object]) -> dict[tuple[str, int], int]:
    """Lag of each partition this consumer fetches that reports one (librdkafka computes
    it from the high watermark of the last fetch response, not from ListOffsets)."""
    lags: dict[tuple[str, int], int] = {}
    topics = stats.get("topics")
    if not isinstance(topics, dict):
        return lags
    for name, topic in topics.items():
        for partition in (topic.get("partitions") or {}).values():
            number, lag = partition.get("partition", -1), partition.get("consumer_lag", -1)
            if number >= 0 and lag is not None and lag >= 0:
                lags[(name, int(number))] = int(lag)
    return lags


def consumer_lag(stats: dict[str, object]) -> int:
    """Total lag of the partitions this consumer fetches, -1 when none reports it."""
    lags = partition_lags(stats)
    return sum(lags.values()) if lags else -1


def group_join_state(stats: dict[str, object]) -> str:
    """The consumer group's join state ("steady" once joined and assigned, even to no
    partitions; "wait-join" and the like while joining or rebalancing); "" if unknown."""
    group = stats.get("cgrp")
    if not isinstance(group, dict):
        return ""
    return str(group.get("join_state") or "")
