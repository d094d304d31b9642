"""The simulated populations the stream tests draw from."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from fraudstream.simulator.generator import SimulationConfig

# Trains in about a second; the session's model is fitted on it.
TEST_POPULATION = SimulationConfig(customers=300, terminals=600, days=40, seed=7)


def recent(days: int, config: SimulationConfig = TEST_POPULATION,
           **changes: object) -> SimulationConfig:
    """``config`` over ``days`` days ending yesterday: event times the worker accepts."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return dataclasses.replace(config, days=days, start=today - timedelta(days=days),
                               **changes)
