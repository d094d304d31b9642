"""score-file decides what the stream decides, for the same events and labels.

The stream test runs a real worker on a real broker and Redis. Labels are confirmed some
days after their transaction (some within the 7-day label delay, some later, some never)
and sent at midnight of that day, before the day's transactions; the file carries the
same labels in ``is_fraud`` and ``label_time``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from fraudstream.batch.score_file import score_file
from fraudstream.features.definitions import COL_TERMINAL_RISK, DAY_MS, LABEL_DELAY_DAYS
from fraudstream.features.offline import compute_matrix
from fraudstream.models.registry import Registry
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import label_message, produce_all, transaction_messages
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.kafka_config import producer_config
from fraudstream.stream.worker import Worker
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import recent
from tests.waiting import wait_for

TX_COLUMNS = ["transaction_id", "timestamp", "customer_id", "terminal_id", "amount"]


def with_label_times(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each fraud is confirmed 1 to 14 days after its day (8 or more: after the label
    delay), at midnight, or never (one in five); a third of the genuine ones too."""
    rng = np.random.default_rng(seed)
    day = frame["timestamp"].to_numpy() // DAY_MS
    fraud = frame["is_fraud"].to_numpy().astype(bool)
    confirmed = np.where(fraud, rng.random(len(frame)) < 0.8, rng.random(len(frame)) < 0.33)
    label_day = day + rng.integers(1, 15, len(frame))
    label_time = pd.array(np.where(confirmed, label_day * DAY_MS, 0), dtype="Int64")
    label_time[~confirmed] = pd.NA
    return frame.assign(label_time=label_time)


def stream_with_labels_at_midnight(settings: Settings, worker: Worker,
                                   frame: pd.DataFrame) -> None:
    """Day by day: the labels confirmed that midnight, applied, then the day's
    transactions, decided."""
    producer = Producer(producer_config(settings))
    day = (frame["timestamp"] // DAY_MS).to_numpy()
    label_time = frame["label_time"]
    sent = labels = 0
    for today in np.unique(day):
        midnight = int(today) * DAY_MS
        due = frame[(label_time == midnight).fillna(False).to_numpy()]
        rows = zip(due["transaction_id"].tolist(), due["timestamp"].tolist(),
                   due["customer_id"].tolist(), due["terminal_id"].tolist(),
                   due["is_fraud"].tolist(), strict=True)
        labels += produce_all(producer, settings.topic_labels,
                              [(str(r[2]).encode(), label_message(r, midnight)) for r in rows])
        assert producer.flush(30) == 0
        wait_for(lambda target=labels: worker.labels_applied >= target, f"labels of {today}")
        sent += produce_all(producer, settings.topic_transactions,
                            transaction_messages(frame[day == today]))
        assert producer.flush(30) == 0
        wait_for(lambda target=sent + labels: worker.events >= target, f"day {today}")


def read_decisions(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas().set_index("transaction_id")


def test_score_file_decides_every_transaction_as_the_worker_did(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=4)
    frame = with_label_times(simulate(recent(21, customers=300, terminals=600, seed=3)), 5)
    with running_worker(settings) as worker:
        stream_with_labels_at_midnight(settings, worker, frame)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame), timeout=120)
    streamed = {}
    for record in records:
        decision = decision_decoder.decode(record.value)
        assert decision.transaction_id not in streamed, "duplicate decision"
        streamed[decision.transaction_id] = decision
    assert len(streamed) == len(frame)

    source = tmp_path / "transactions.parquet"
    frame[[*TX_COLUMNS, "is_fraud", "label_time"]].to_parquet(source, index=False)
    artifact = Registry(settings.model_dir).load_champion()
    summary = score_file(source, tmp_path / "decisions.parquet", artifact)
    assert summary.scored == len(frame) and summary.rejected == 0
    batch = read_decisions(tmp_path / "decisions.parquet")
    assert len(batch) == len(frame)

    mismatches = []
    for tx_id, row in batch.iterrows():
        online = streamed[tx_id]
        same = (abs(online.score - row["score"]) <= 1e-9 and online.decision == row["decision"]
                and online.reasons == list(row["reasons"])
                and online.model_version == row["model_version"]
                and online.degraded == list(row["degraded"])
                and online.customer_id == row["customer_id"])
        if not same:
            mismatches.append((tx_id, online, row.to_dict()))
    assert not mismatches, f"{len(mismatches)} decisions differ; first: {mismatches[0]}"

    # The comparison must have met late labels, and decisions other than approve.
    decided = batch["decision"].value_counts()
    assert decided.get("review", 0) + decided.get("decline", 0) > 20, decided
    fraud = (frame["is_fraud"].astype(bool) & frame["label_time"].notna()).astype(int)
    known = frame["label_time"].fillna(0).to_numpy(dtype=np.int64)
    labelled = frame.assign(is_fraud=fraud)
    on_delay, at_times = compute_matrix(labelled), compute_matrix(labelled, known)
    risk = COL_TERMINAL_RISK[30]
    late = (frame["label_time"] > (frame["timestamp"] // DAY_MS + LABEL_DELAY_DAYS) * DAY_MS)
    assert late.fillna(False).sum() > 10
    assert (at_times[:, risk] > 0).sum() > 50
    assert (on_delay[:, risk] != at_times[:, risk]).sum() > 20, "no late label mattered"
    # ... so much that the same labels read by the label delay alone would not match.
    by_delay = tmp_path / "by-delay.parquet"
    labelled[[*TX_COLUMNS, "is_fraud"]].to_parquet(by_delay, index=False)
    score_file(by_delay, tmp_path / "by-delay-decisions.parquet", artifact)
    other = read_decisions(tmp_path / "by-delay-decisions.parquet")
    online_scores = np.array([streamed[i].score for i in other.index])
    assert (np.abs(other["score"].to_numpy() - online_scores) > 1e-9).sum() > 20


@pytest.fixture
def champion(settings: Settings) -> object:
    return Registry(settings.model_dir).load_champion()


def test_csv_parquet_and_any_customer_interleaving_decide_alike(
        champion: object, tmp_path: Path) -> None:
    frame = simulate(recent(12, customers=200, terminals=400, seed=8))
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    frame.to_csv(tmp_path / "in.csv", index=False)
    # Customer by customer: each customer's rows keep their order, the file's order changes.
    frame.sort_values("customer_id", kind="stable").to_parquet(tmp_path / "by_customer.parquet",
                                                               index=False)
    shuffled = frame.sample(frac=1.0, random_state=1)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    outputs = {}
    for name, extra in (("in.parquet", {}), ("in.csv", {}), ("by_customer.parquet", {}),
                        ("shuffled.csv", {"sort_by_time": True})):
        out = tmp_path / f"out-{name}.parquet"
        summary = score_file(tmp_path / name, out, champion, **extra)
        assert summary.scored == len(frame), name
        outputs[name] = read_decisions(out).sort_index()
    reference = outputs.pop("in.parquet")
    assert reference["decision"].nunique() > 1
    for name, decisions in outputs.items():
        pd.testing.assert_frame_equal(decisions, reference, check_exact=True, obj=name)
    order = pq.read_table(tmp_path / "out-shuffled.csv.parquet").column("transaction_id")
    assert order.to_pylist() == [str(i) for i in shuffled["transaction_id"]], \
        "output rows follow the input's order"


def test_rejected_rows_are_listed_and_leave_the_others_untouched(
        champion: object, tmp_path: Path) -> None:
    frame = simulate(recent(10, customers=100, terminals=200, seed=4))
    text = frame.astype(str)
    text.loc[3, "amount"] = "-5"
    text.loc[10, "timestamp"] = "2025-13-01T00:00:00Z"
    text.loc[17, "customer_id"] = ""
    text.loc[25, "is_fraud"] = "perhaps"
    text.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(tmp_path / "in.csv", tmp_path / "out.csv", champion)
    assert (summary.rows, summary.scored, summary.rejected, summary.labels_ignored) == (
        len(frame), len(frame) - 3, 3, 1)
    rejects = pd.read_csv(tmp_path / "out.rejects.csv", dtype=str, keep_default_na=False)
    assert rejects[["row", "scored", "reason"]].values.tolist() == [
        ["4", "false", "amount must be > 0"],
        ["11", "false", "timestamp is not RFC 3339 or epoch milliseconds"],
        ["18", "false", "customer_id is missing"],
        ["26", "true", "label ignored: is_fraud must be true/false or 1/0"]]
    assert rejects.loc[0, "amount"] == "-5" and rejects.loc[1, "timestamp"].startswith("2025-13")
    # The rejected rows never reach the features: scoring the file without them (and
    # without the one ignored label) decides every other transaction the same.
    clean = frame.drop(index=[3, 10, 17])
    clean.loc[25, "is_fraud"] = 0
    clean.to_parquet(tmp_path / "clean.parquet", index=False)
    score_file(tmp_path / "clean.parquet", tmp_path / "clean-out.parquet", champion)
    expected = read_decisions(tmp_path / "clean-out.parquet")
    got = pd.read_csv(tmp_path / "out.csv", dtype={"transaction_id": str, "customer_id": str}
                      ).set_index("transaction_id")
    assert got.index.tolist() == expected.index.tolist()
    assert np.array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
    assert got["decision"].tolist() == expected["decision"].tolist()


def test_a_fraud_label_counts_once_per_transaction_as_in_the_worker(
        champion: object, tmp_path: Path) -> None:
    frame = simulate(recent(16, customers=100, terminals=50, seed=6))
    day = frame["timestamp"] // DAY_MS
    first = int(np.flatnonzero(frame["is_fraud"].to_numpy() & (day < day.min() + 5))[0])
    twice = pd.concat([frame.iloc[:first + 1], frame.iloc[[first]], frame.iloc[first + 1:]],
                      ignore_index=True)  # the same event, fraud label included, twice
    twice.to_parquet(tmp_path / "twice.parquet", index=False)
    summary = score_file(tmp_path / "twice.parquet", tmp_path / "out.parquet", champion)
    assert (summary.scored, summary.labels_ignored) == (len(frame) + 1, 1)
    rejects = pq.read_table(tmp_path / "out.rejects.parquet").to_pylist()
    assert [(r["row"], r["scored"], r["reason"]) for r in rejects] == [
        (first + 2, True, "label ignored: this transaction's fraud label was already counted")]
    # The transaction counts twice (two events), its fraud once.
    once = twice.copy()
    once.loc[first + 1, "is_fraud"] = 0
    once.to_parquet(tmp_path / "once.parquet", index=False)
    score_file(tmp_path / "once.parquet", tmp_path / "once-out.parquet", champion)
    a = pq.read_table(tmp_path / "out.parquet")
    b = pq.read_table(tmp_path / "once-out.parquet")
    assert a.equals(b)
    counted_twice = compute_matrix(twice)[:, COL_TERMINAL_RISK[30]]
    assert not np.array_equal(compute_matrix(once)[:, COL_TERMINAL_RISK[30]], counted_twice)
