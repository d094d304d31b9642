"""The Faust runtime decides a stream exactly as the model does on the training features."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import redis

from fraudstream.features import terminal_state
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import label_message, produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.conftest import settings_env
from tests.e2e.cli import ROOT
from tests.kafka_helpers import make_topics, produce_raw, read_topic
from tests.population import recent
from tests.waiting import wait_for


def test_faust_agent_decides_the_stream_like_the_model(settings: Settings,
                                                      tmp_path: Path) -> None:
    make_topics(settings, partitions=4)
    frame = simulate(recent(3, seed=21))
    log = tmp_path / "faust.log"
    with open(log, "wb") as handle:
        agent = subprocess.Popen([sys.executable, "-m", "fraudstream.stream.faust_app",
                                  "worker", "-l", "warn"], env=settings_env(settings), cwd=ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        produce_frame(settings, frame)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame),
                             timeout=120)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    decisions = {d.transaction_id: d for d in
                 (decision_decoder.decode(r.value) for r in records)}
    assert len(records) == len(frame) == len(decisions), log.read_text()[-2000:]
    # No labels were sent: the agent's terminal risk is 0, as offline without labels.
    expected = Scorer(Registry(settings.model_dir).load_champion(), FEATURE_NAMES).score(
        compute_matrix(frame.drop(columns=["is_fraud"])))
    for i, tx_id in enumerate(frame["transaction_id"].astype(str)):
        decision = decisions[tx_id]
        assert np.isclose(decision.score, expected.scores[i], rtol=0, atol=1e-9), tx_id
        assert decision.decision == OUTCOMES[int(expected.codes[i])]
        assert decision.model_version == Registry(settings.model_dir).champion_version()


def test_faust_agent_applies_labels_and_dead_letters_with_the_workers_policy(
        settings: Settings, tmp_path: Path) -> None:
    """Labels stream through the agent into terminal state (the decision core's
    ``apply_labels``), and a hostile transaction and label go to the DLQ with the reason
    and source coordinates, cut to fit, as the worker sends them."""
    make_topics(settings, partitions=2)
    frame = simulate(recent(3, seed=22))
    frauds = frame[frame["is_fraud"] == 1]
    assert len(frauds) > 0
    log = tmp_path / "faust.log"
    with open(log, "wb") as handle:
        agent = subprocess.Popen([sys.executable, "-m", "fraudstream.stream.faust_app",
                                  "worker", "-l", "warn"], env=settings_env(settings), cwd=ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        hostile = b'{"transaction_id":"x","extra":' + b"[" * 1000 + b"]" * 1000 + b"}"
        produce_raw(settings, settings.topic_transactions, [(b"bad-tx", hostile)])
        produce_frame(settings, frame)
        read_topic(settings, settings.topic_decisions, expect=len(frame), timeout=120)
        now = int(time.time() * 1000)
        rows = frauds[["transaction_id", "timestamp", "customer_id", "terminal_id",
                       "is_fraud"]].itertuples(index=False, name=None)
        produce_raw(settings, settings.topic_labels,
                    [(str(row[2]).encode(), label_message(row, now)) for row in rows]
                    + [(b"bad-label", b"{not a label")])
        dead = read_topic(settings, settings.topic_dlq, expect=2, timeout=60)
        client = redis.Redis.from_url(settings.redis_url or "")
        keys = [f"{settings.redis_prefix}:t:{t}" for t in frauds["terminal_id"].astype(str)]
        wait_for(lambda: sum(len(terminal_state.decode(client.get(k)).fraud_ids)
                             for k in set(keys)) == len(frauds), timeout=60,
                 what=f"{len(frauds)} fraud labels counted by the agent")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    by_key = {r.key: r for r in dead}
    assert set(by_key) == {b"bad-tx", b"bad-label"}, log.read_text()[-2000:]
    assert "too deeply nested" in by_key[b"bad-tx"].headers["error"].decode()
    assert by_key[b"bad-label"].headers["source.topic"].decode() == settings.topic_labels
    for record in dead:
        assert {"source.partition", "source.offset"} <= set(record.headers)
