"""``fraudstream backfill`` as a separate process: a history file twice, the topics up to
T with the group committed at T, and bad arguments refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from fraudstream.features.definitions import DAY_MS
from fraudstream.services import free_port
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.kafka_config import consumer_config
from tests.e2e.cli import run_cli
from tests.kafka_helpers import make_topics, read_topic
from tests.parity import history_file, snapshot
from tests.population import recent


def test_a_history_file_backfilled_twice_changes_nothing_the_second_time(
        settings: Settings, tmp_path: Path) -> None:
    frame = simulate(recent(10, customers=80, terminals=120, seed=4))
    path = history_file(tmp_path / "history.csv", frame)
    keys = frame["customer_id"].nunique() + frame["terminal_id"].nunique()
    first = run_cli(settings, "backfill", str(path))
    assert first.returncode == 0, first.stderr
    assert f"backfilled {keys:,} keys" in first.stdout and f"{keys:,} written" in first.stdout
    assert "guards: none" in first.stdout
    before = snapshot(settings)
    second = run_cli(settings, "backfill", str(path))
    assert second.returncode == 0, second.stderr
    assert f"0 written, {keys:,} already up to date" in second.stdout, second.stdout
    assert snapshot(settings) == before and len(before) == keys


def test_backfill_from_the_topics_until_t_commits_the_group_at_t(settings: Settings) -> None:
    make_topics(settings, partitions=2)
    frame = simulate(recent(6, customers=60, terminals=100, seed=2))
    produce_frame(settings, frame)
    day = frame["timestamp"] // DAY_MS
    until = int(frame.loc[day < day.min() + 4, "timestamp"].max())
    records = read_topic(settings, settings.topic_transactions, expect=len(frame), settle=0.2)
    cut = {p: min((r.offset for r in records if r.partition == p
                   and _event_time(r.value) > until), default=None) for p in (0, 1)}
    done = run_cli(settings, "backfill", "--from-topics", "--until", str(until),
                   "--commit-group")
    assert done.returncode == 0, done.stderr
    history = int((frame["timestamp"] <= until).sum())
    assert f"replayed {history:,} transactions" in done.stdout, done.stdout
    consumer = Consumer(consumer_config(settings))
    try:
        committed = consumer.committed([TopicPartition(settings.topic_transactions, p)
                                        for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == cut


def _event_time(value: bytes | None) -> int:
    import json

    return int(json.loads(value or b"{}")["timestamp"])


@pytest.mark.parametrize(("args", "message"), [
    ((), "give a history file or --from-topics"),
    (("history.parquet", "--from-topics"), "give a history file or --from-topics"),
    (("history.parquet", "--until", "2026-01-01T00:00:00Z"), "--until needs --from-topics"),
    (("history.parquet", "--commit-group"), "--commit-group needs --from-topics"),
    (("--from-topics", "--until", "yesterday"), "--until is not RFC 3339"),
    (("--from-topics", "--commit-group"), "--commit-group needs --until T"),
    (("missing.parquet",), "does not exist"),
    (("history.txt",), "unknown format"),
])
def test_bad_arguments_exit_non_zero_with_one_line(settings: Settings, args: tuple[str, ...],
                                                   message: str) -> None:
    done = run_cli(settings, "backfill", *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_rejected_rows_go_to_the_rejects_file_and_the_rest_is_backfilled(
        settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("transaction_id,timestamp,customer_id,terminal_id,amount,is_fraud\n"
                    "1,1764547200000,c1,t1,12.5,0\n"
                    "2,1764547260000,c1,t2,-3,0\n"
                    "3,not-a-time,c2,t1,4.0,1\n"
                    "4,1764547320000,c2,t1,8.0,1\n")
    done = run_cli(settings, "backfill", str(path))
    assert done.returncode == 0, done.stderr
    assert "read 2 transactions of 4 rows (1 frauds)" in done.stdout, done.stdout
    assert "rejected 2 rows" in done.stdout
    assert (tmp_path / "history.rejects.csv").exists()
    assert len(snapshot(settings)) == 3  # c1, c2 and t1: rows 1 and 4


@pytest.mark.parametrize(("extra", "message"), [
    ("partition\n0\n", "has a partition column but no offset column"),
    ("partition,offset\n0,-4\n", "row 1: offset '-4' is not a whole number"),
    ("partition,offset\n0,x\n", "row 1: offset 'x' is not a whole number"),
])
def test_bad_coordinates_are_refused_in_one_line(settings: Settings, tmp_path: Path,
                                                 extra: str, message: str) -> None:
    header, row = extra.splitlines()
    path = tmp_path / "export.csv"
    path.write_text(f"transaction_id,timestamp,customer_id,terminal_id,amount,{header}\n"
                    f"1,1764547200000,c1,t1,12.5,{row}\n")
    done = run_cli(settings, "backfill", str(path))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert snapshot(settings) == {}


def test_a_redis_that_does_not_answer_ends_the_backfill_in_one_line(
        settings: Settings, tmp_path: Path) -> None:
    frame = simulate(recent(3, customers=20, terminals=30, seed=4))
    path = history_file(tmp_path / "history.parquet", frame)
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(settings.replace(redis_url=nobody), "backfill", str(path))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "run the same backfill again" in lines[0], done.stderr
