"""The Faust runtime decides a stream exactly as the model does on the training features."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from features.definitions import FEATURE_NAMES
from features.offline import compute_matrix
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from models.decisions import OUTCOMES
from models.registry import Registry
from models.scorer import Scorer
from stream.decisions import decision_decoder
from tests.conftest import settings_env
from tests.e2e.cli import ROOT
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent


def test_faust_agent_decides_the_stream_like_the_model(settings: Settings,
                                                      tmp_path: Path) -> None:
    make_topics(settings, partitions=4)
    frame = simulate(recent(3, seed=21))
    log = tmp_path / "faust.log"
    with open(log, "wb") as handle:
        agent = subprocess.Popen([sys.executable, "-m", "stream.faust_app", "worker", "-l",
                                  "warn"], env=settings_env(settings), cwd=ROOT,
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
