"""Drift seen by a running worker: customers start spending 2.5 times as much, and the PSI of
the amount features crosses the alert level while features unrelated to amounts do not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.drift import ALERT_PSI
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import TEST_POPULATION

AMOUNT_FEATURES = {"amount", "customer_avg_amount_1d", "customer_avg_amount_7d"}
# Not compared: a 2,000-event window spans about three days, so the weekend share swings
# with the calendar; 30-day windows are still filling after 33 days of history; and this
# test streams no labels, so terminal risk is 0 where training saw frauds.
UNRELATED = {"is_night", "customer_nb_tx_1d", "customer_nb_tx_7d",
             "customer_seconds_since_prev", "terminal_nb_tx_1d", "terminal_nb_tx_7d"}


def _psi(worker) -> dict[str, float]:
    return {s.labels["feature"]: s.value
            for s in next(iter(worker.metrics.feature_psi.collect())).samples}


def test_an_amount_shift_crosses_the_alert_level_and_unrelated_features_do_not(
        settings: Settings) -> None:
    settings = settings.replace(drift_window=2000)
    make_topics(settings, partitions=1)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    history = dataclasses.replace(TEST_POPULATION, days=33, start=today - timedelta(days=40))
    shifted = dataclasses.replace(TEST_POPULATION, days=6, start=today - timedelta(days=7),
                                  amount_scale=2.5)
    before, after = simulate(history), simulate(shifted)
    after = after.assign(transaction_id=after["transaction_id"] + len(before))
    with running_worker(settings) as worker:
        produce_frame(settings, before)
        read_topic(settings, settings.topic_decisions, expect=len(before), settle=0.2)
        steady = _psi(worker)
        produce_frame(settings, after)
        read_topic(settings, settings.topic_decisions, expect=len(before) + len(after),
                   settle=0.2)
        drifted = _psi(worker)
    print("steady", {k: round(v, 3) for k, v in steady.items()})
    print("drifted", {k: round(v, 3) for k, v in drifted.items()})
    assert all(steady[name] < ALERT_PSI for name in AMOUNT_FEATURES | UNRELATED), steady
    assert all(drifted[name] > ALERT_PSI for name in AMOUNT_FEATURES), drifted
    assert all(drifted[name] < ALERT_PSI for name in UNRELATED), drifted
