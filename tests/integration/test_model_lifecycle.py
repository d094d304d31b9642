"""Model lifecycle on a real broker and Redis: a challenger scored in shadow never decides,
a promotion takes over between batches with no event lost, a broken challenger is contained."""

from __future__ import annotations

import numpy as np

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models.follower import ModelSet
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.app import build_worker
from fraudstream.stream.decisions import Decision, decision_decoder
from tests.conftest import ModelPair
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.metrics import counter_value
from tests.model_factory import write_model
from tests.population import recent
from tests.waiting import wait_for

SCHEMA = feature_schema_digest()


def decisions_of(settings: Settings, topic: str, expect: int) -> dict[str, Decision]:
    records = read_topic(settings, topic, expect=expect, settle=0.5)
    decoded = [decision_decoder.decode(r.value) for r in records]
    by_id = {d.transaction_id: d for d in decoded}
    assert len(by_id) == len(decoded) == expect, f"{expect} sent, {len(decoded)} on {topic}"
    return by_id


def rescored(registry: Registry, version: str, decisions: list[Decision]) -> np.ndarray:
    matrix = np.array([[d.features[name] for name in FEATURE_NAMES]
                       for d in decisions])
    return Scorer(registry.load(version), FEATURE_NAMES, SCHEMA).score(matrix).scores


def test_the_challenger_is_shadowed_and_never_decides(
        settings: Settings, model_pair: ModelPair) -> None:
    registry, champion, challenger = model_pair.registry, model_pair.champion, model_pair.other
    registry.set_challenger(challenger, FEATURE_NAMES, SCHEMA)
    # A time share no challenger reaches: every batch is shadowed (the cap has its test).
    settings = settings.replace(model_dir=str(registry.root), emit_features=True,
                                shadow_max_share=1000.0)
    make_topics(settings, partitions=2)
    sent = produce_frame(settings, simulate(recent(3)))
    with running_worker(settings) as worker:
        decided = decisions_of(settings, settings.topic_decisions, sent)
        shadowed = decisions_of(settings, settings.topic_shadow, sent)
        scored = counter_value(worker.metrics.shadow_events, outcome="scored")
        shadow_batches = worker.metrics.shadow_seconds.collect()[0].samples
    assert set(decided) == set(shadowed)
    ids = sorted(decided)
    assert {decided[i].model_version for i in ids} == {champion}
    assert {shadowed[i].model_version for i in ids} == {challenger}
    # Decisions carry the champion's scores of the very features scored; the shadow
    # events carry the challenger's scores of the same features.
    champion_scores = np.array([decided[i].score for i in ids])
    shadow_scores = np.array([shadowed[i].score for i in ids])
    np.testing.assert_allclose(
        champion_scores, rescored(registry, champion, [decided[i] for i in ids]), atol=1e-12)
    np.testing.assert_allclose(
        shadow_scores, rescored(registry, challenger, [decided[i] for i in ids]), atol=1e-12)
    assert np.abs(champion_scores - shadow_scores).max() > 1e-3, "two different models"
    assert scored == sent
    count = next(s.value for s in shadow_batches if s.name.endswith("_count"))
    assert count >= 1, "shadow time is measured on its own histogram"


def test_a_challenger_over_its_time_share_is_skipped_not_waited_for(
        settings: Settings, model_pair: ModelPair) -> None:
    registry, champion, challenger = model_pair.registry, model_pair.champion, model_pair.other
    registry.set_challenger(challenger, FEATURE_NAMES, SCHEMA)
    settings = settings.replace(model_dir=str(registry.root), shadow_max_share=0.01)
    make_topics(settings, partitions=2)
    sent = produce_frame(settings, simulate(recent(3)))
    with running_worker(settings) as worker:
        decided = decisions_of(settings, settings.topic_decisions, sent)
        scored = counter_value(worker.metrics.shadow_events, outcome="scored")
        skipped = counter_value(worker.metrics.shadow_events, outcome="skipped")
    assert {d.model_version for d in decided.values()} == {champion}
    assert scored + skipped == sent
    assert skipped > scored, "a challenger costing more than 1% of the champion's time"
    shadowed = read_topic(settings, settings.topic_shadow, expect=int(scored), settle=0.5)
    assert len(shadowed) == scored


def test_a_promotion_mid_stream_takes_over_between_batches(
        settings: Settings, model_pair: ModelPair) -> None:
    registry, champion, newcomer = model_pair.registry, model_pair.champion, model_pair.other
    settings = settings.replace(model_dir=str(registry.root), model_poll_s=0.1)
    make_topics(settings, partitions=2)
    frame = simulate(recent(4))
    half = len(frame) // 2
    with running_worker(settings) as worker:
        produce_frame(settings, frame.iloc[:half])
        read_topic(settings, settings.topic_decisions, expect=half, settle=0.1)
        registry.promote(newcomer, FEATURE_NAMES, SCHEMA)
        wait_for(lambda: worker.scorer.version == newcomer, "the promotion to be picked up",
                 20, 0.05)
        produce_frame(settings, frame.iloc[half:])
        decided = decisions_of(settings, settings.topic_decisions, len(frame))
        swaps = counter_value(worker.metrics.model_swaps)
    first = [str(i) for i in frame["transaction_id"].iloc[:half]]
    second = [str(i) for i in frame["transaction_id"].iloc[half:]]
    assert {decided[i].model_version for i in first} == {champion}
    assert {decided[i].model_version for i in second} == {newcomer}
    assert swaps == 1


def test_a_challenger_that_cannot_score_is_refused_at_load(
        settings: Settings, model_pair: ModelPair) -> None:
    registry, champion = model_pair.registry, model_pair.champion
    write_model(registry.root, "broken", fitted_width=len(FEATURE_NAMES) - 1)
    registry.set_challenger("broken", FEATURE_NAMES, SCHEMA)
    settings = settings.replace(model_dir=str(registry.root))
    make_topics(settings, partitions=2)
    sent = produce_frame(settings, simulate(recent(2)))
    with running_worker(settings) as worker:
        decided = decisions_of(settings, settings.topic_decisions, sent)
        assert worker.challenger is None
    assert {d.model_version for d in decided.values()} == {champion}


def test_a_challenger_failing_mid_stream_never_touches_the_decisions(
        settings: Settings, model_pair: ModelPair) -> None:
    registry, champion = model_pair.registry, model_pair.champion
    write_model(registry.root, "broken", fitted_width=len(FEATURE_NAMES) - 1)
    settings = settings.replace(model_dir=str(registry.root))
    make_topics(settings, partitions=2)
    sent = produce_frame(settings, simulate(recent(2)))
    worker = build_worker(settings)
    # As if it had scored its warm-up and broke later: every batch it is offered fails.
    broken = Scorer(registry.load("broken"), FEATURE_NAMES, SCHEMA)
    worker._use_models(ModelSet(worker.scorer, broken))
    with running_worker(settings, worker):
        decided = decisions_of(settings, settings.topic_decisions, sent)
        failed = counter_value(worker.metrics.shadow_events, outcome="failed")
    assert {d.model_version for d in decided.values()} == {champion}
    assert all(d.degraded == [] for d in decided.values())
    assert failed == sent
