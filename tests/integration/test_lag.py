"""Group lag measured from outside, against the real broker: exact while nothing consumes,
zero once a worker has drained the topic."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.kafka_config import downstream_consumer_config
from fraudstream.stream.lag import LagObserver, LagSample
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import recent
from tests.waiting import wait_for

PARTITIONS = 4


def sample_until(observer: LagObserver, done: Callable[[LagSample], bool],
                 timeout: float = 30.0) -> LagSample:
    """Until a lag sample satisfies ``done``; that sample."""
    last: list[LagSample | None] = [None]

    def reached() -> LagSample | None:
        last[0] = observer.sample()
        return last[0] if last[0] is not None and done(last[0]) else None

    return wait_for(reached, lambda: f"the lag; last sample: {last[0]}", timeout, 0.2)


def list_offsets_highs(settings: Settings) -> dict[int, int]:
    """High watermarks from ListOffsets, for comparison only (wrong on Tansu)."""
    consumer = Consumer(downstream_consumer_config(settings, f"probe-{time.time_ns()}"))
    try:
        return {p: consumer.get_watermark_offsets(
                    TopicPartition(settings.topic_transactions, p), timeout=10)[1]
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


def test_lag_is_every_record_until_a_worker_drains_it(settings: Settings) -> None:
    make_topics(settings, partitions=PARTITIONS)
    frame = simulate(recent(2))
    with LagObserver(settings) as observer:
        assert observer.partitions == PARTITIONS
        assert observer.wait_ready(), "no fetch response brought the high watermarks"
        sent = produce_frame(settings, frame)  # a batching producer: the case ListOffsets
        # gets wrong on Tansu

        nothing_consumed = sample_until(observer, lambda s: s.total >= sent)
        records = read_topic(settings, settings.topic_transactions, expect=sent, settle=0.5)
        per_partition = Counter(r.partition for r in records)
        assert nothing_consumed.total == sent
        assert nothing_consumed.by_partition() == {p: per_partition[p]
                                                   for p in range(PARTITIONS)}
        assert all(p.committed is None for p in nothing_consumed.partitions)
        listed = list_offsets_highs(settings)
        if listed != {p.partition: p.high for p in nothing_consumed.partitions}:
            print(f"broker gap: ListOffsets says high watermarks {listed}, fetch responses "
                  f"{nothing_consumed.by_partition()}; lag from ListOffsets would be wrong")

        with running_worker(settings):
            drained = sample_until(observer, lambda s: s.total == 0, timeout=60)
            assert all(p.committed == p.high for p in drained.partitions)
            assert drained.produced == sent
            more = produce_frame(settings, simulate(recent(1, seed=11)))
            again = sample_until(observer, lambda s: s.produced == sent + more and s.total == 0,
                             timeout=60)
        assert again.total == 0
