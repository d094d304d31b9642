"""A backfilled history, then the rest streamed through a real worker: the features
scored and the state left equal the offline engine's over the whole frame, value for
value, whether the worker starts right after the history, re-reads part of it from the
topic, or the store is rebuilt from the topics after losing its data mid-stream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from fraudstream.features.backfill import materialize
from fraudstream.features.definitions import DAY_MS, FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.history.files import read_history
from fraudstream.history.topics import replay_topics
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.kafka_config import consumer_config
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.parity import Scored, history_file, scored_features, state_keys, stream_day_by_day
from tests.population import recent
from tests.state_oracle import state_differences
from tests.waiting import wait_for

HISTORY_DAYS = 32  # the 30-day windows and the label delay reach into the history


@pytest.fixture
def frame() -> pd.DataFrame:
    return simulate(recent(42, customers=150, terminals=250, seed=3))


def streaming(settings: Settings) -> Settings:
    """Features in the decisions; Redis given time on a loaded machine: a label batch
    whose write timed out is applied later from the state backlog, but
    ``worker.labels_applied``, which the day-by-day stream waits on, never counts it."""
    return settings.replace(emit_features=True, redis_timeout_ms=2000)


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history H, the rest R) at a day boundary."""
    day = frame["timestamp"] // DAY_MS
    cut = day < day.min() + HISTORY_DAYS
    return frame[cut].reset_index(drop=True), frame[~cut].reset_index(drop=True)


def backfill_file(settings: Settings, path: Path) -> None:
    store = feature_state_store(settings, timeout_s=5.0)
    materialize(read_history(path).history, store, settings.redis_prefix,
                settings.feature_ttl_days)


def assert_parity(settings: Settings, frame: pd.DataFrame, rest: pd.DataFrame,
                  scored: Scored, name: str) -> None:
    """The features scored for ``rest`` and the state in Redis are the offline engine's
    over all of ``frame``."""
    offline = compute_matrix(frame)
    row = {str(t): i for i, t in enumerate(frame["transaction_id"])}
    ids = [str(t) for t in rest["transaction_id"]]
    missing = [t for t in ids if t not in scored and t not in scored.on_defaults]
    online = np.array([scored[t] for t in ids if t in scored])
    diff = np.abs(online - offline[[row[t] for t in ids if t in scored]])
    worst = float(diff.max()) if diff.size else 0.0
    wrong_state = state_differences(settings, frame)
    print(f"[{name}] history={len(frame) - len(rest)} streamed={len(rest)} "
          f"decided={len(ids) - len(missing)} lost={len(missing)} "
          f"on_default_features={len(scored.on_defaults)} "
          f"largest_feature_difference={worst} state_differences={len(wrong_state)}")
    assert not missing, f"{len(missing)} transactions of the stream were not decided"
    if worst > 1e-9:
        r, c = np.unravel_index(int(diff.argmax()), diff.shape)
        pytest.fail(f"feature {FEATURE_NAMES[c]} of transaction {ids[r]}: worker "
                    f"{online[r, c]!r}, offline {offline[row[ids[r]], c]!r}")
    assert wrong_state == [], wrong_state[:10]
    assert online[:, FEATURE_NAMES.index("customer_nb_tx_30d")].min() > 0
    assert online[:, FEATURE_NAMES.index("terminal_risk_30d")].max() > 0, \
        "the history's labels must reach the stream's terminal risk"


def test_a_backfilled_history_file_then_the_stream_match_the_offline_engine(
        settings: Settings, tmp_path: Path, frame: pd.DataFrame) -> None:
    """The cut-over: history H from a file, workers start with the first event after H."""
    _file_then_stream(settings, tmp_path, frame, "file history, then the stream")


def test_the_same_on_a_redis_cluster(settings: Settings, tmp_path: Path,
                                     frame: pd.DataFrame, redis_cluster_url: str) -> None:
    _file_then_stream(settings.replace(redis_url=redis_cluster_url, redis_cluster=True),
                      tmp_path, frame, "file history, then the stream, on a cluster")


def _file_then_stream(settings: Settings, tmp_path: Path, frame: pd.DataFrame,
                      name: str) -> None:
    settings = streaming(settings)
    make_topics(settings, partitions=3)
    history, rest = split(frame)
    backfill_file(settings, history_file(tmp_path / "history.parquet", history))
    with running_worker(settings) as worker:
        stream_day_by_day(settings, worker, rest, labelled=frame)
        scored = scored_features(settings, expect=len(rest))
    assert_parity(settings, frame, rest, scored, name)


def _coordinates(settings: Settings, expect: int) -> dict[str, tuple[int, int]]:
    """transaction id -> (partition, offset) in the transactions topic."""
    records = read_topic(settings, settings.topic_transactions, expect=expect, settle=0.2)
    return {json.loads(r.value)["transaction_id"]: (r.partition, r.offset) for r in records}


def _commit_halfway(settings: Settings, places: dict[str, tuple[int, int]]) -> int:
    """Commit the workers' group at half of each partition; returns the events after."""
    ends: dict[int, int] = {}
    for partition, offset in places.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    consumer = Consumer(consumer_config(settings))
    try:
        consumer.commit(offsets=[TopicPartition(settings.topic_transactions, p, end // 2)
                                 for p, end in ends.items()], asynchronous=False)
    finally:
        consumer.close()
    return sum(end - end // 2 for end in ends.values())


def test_the_same_when_part_of_the_history_is_also_replayed_from_the_topic(
        settings: Settings, tmp_path: Path, frame: pd.DataFrame) -> None:
    """H is in the topic and in the file (with its partition and offset columns); the
    workers start halfway through H: its second half is read again, then the stream."""
    settings = streaming(settings)
    make_topics(settings, partitions=3)
    history, rest = split(frame)
    produce_frame(settings, history)
    places = _coordinates(settings, len(history))
    backfill_file(settings, history_file(tmp_path / "export.parquet", history, places))
    replayed = _commit_halfway(settings, places)
    with running_worker(settings) as worker:
        wait_for(lambda: worker.events >= replayed, "the second half of H again")
        stream_day_by_day(settings, worker, rest, labelled=frame, already=worker.events)
        scored = scored_features(settings, expect=replayed + len(rest))
    assert_parity(settings, frame, rest, scored, "half of H replayed from the topic")


def test_parity_after_redis_flushed_mid_stream_and_backfilled_from_the_topics(
        settings: Settings, frame: pd.DataFrame) -> None:
    """Redis flushed mid-stream, backfill from the topics, stream on: parity again."""
    settings = streaming(settings)
    make_topics(settings, partitions=3)
    history, rest = split(frame)
    with running_worker(settings) as worker:
        stream_day_by_day(settings, worker, history)
        client = redis.Redis.from_url(settings.redis_url)
        everything = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
        lost = state_keys(client, settings.redis_prefix)
        client.delete(*everything)
        assert not list(client.scan_iter(match=f"{settings.redis_prefix}:*"))
        client.close()
        replay = replay_topics(settings, until_ms=None)
        assert len(replay.history.transactions) == len(history)
        materialize(replay.history, feature_state_store(settings, timeout_s=5.0),
                    settings.redis_prefix, settings.feature_ttl_days)
        stream_day_by_day(settings, worker, rest, labelled=frame, already=worker.events)
        scored = scored_features(settings, expect=len(frame))
    assert len(lost) == history["customer_id"].nunique() + history["terminal_id"].nunique()
    assert_parity(settings, frame, rest, scored, "redis flushed, rebuilt from the topics")


def test_parity_after_redis_flushed_while_the_worker_goes_on(
        settings: Settings, frame: pd.DataFrame) -> None:
    """Redis flushed mid-stream, the worker decides two more days on the emptied store
    (writing states without the history), then backfill from the topics: it replaces
    those states (it counts all their events too), and the stream on is exact again."""
    settings = streaming(settings)
    make_topics(settings, partitions=3)
    history, rest = split(frame)
    day = rest["timestamp"] // DAY_MS
    during = rest[day < day.min() + 2].reset_index(drop=True)
    after = rest[day >= day.min() + 2].reset_index(drop=True)
    with running_worker(settings) as worker:
        stream_day_by_day(settings, worker, history)
        client = redis.Redis.from_url(settings.redis_url)
        client.delete(*client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
        client.close()
        stream_day_by_day(settings, worker, during, labelled=frame, already=worker.events)
        replay = replay_topics(settings, until_ms=None)
        written = materialize(replay.history, feature_state_store(settings, timeout_s=5.0),
                              settings.redis_prefix, settings.feature_ttl_days)
        stream_day_by_day(settings, worker, after, labelled=frame, already=worker.events)
        scored = scored_features(settings, expect=len(frame))
    print(f"[rebuild while the worker goes on] {written}")
    assert written.replaced > 0 and written.kept == 0, written
    assert len(replay.history.transactions) == len(history) + len(during)
    assert_parity(settings, frame, after, scored, "redis flushed, the worker went on, rebuilt")
