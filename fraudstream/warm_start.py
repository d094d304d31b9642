"""The demo's warm start: the simulated days before the stream are history, trained on and
materialized into the feature store before the first event, so the stream is scored on
the feature values the model was trained on (a cold store makes every customer new)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from fraudstream.features.backfill import WriteSummary, materialize
from fraudstream.history.frames import history_of
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.simulator.streamer import stream_days

# The 30-day windows and the 7-day label delay all reach into the history; training needs
# 60 days for its train, delay and test windows.
HISTORY_DAYS = 60
MAX_STREAM_DAYS = 183


@dataclass(frozen=True)
class WarmStart:
    """One simulation: ``history_days`` of history, then the days the stream covers."""

    config: SimulationConfig
    history_days: int

    @classmethod
    def before_now(cls, customers: int, events: int, amount_scale: float = 1.0) -> WarmStart:
        """History, then a stream of ``events`` whose event times end before now."""
        streamed = stream_days(events, customers, MAX_STREAM_DAYS)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        config = SimulationConfig(customers=customers, terminals=2 * customers,
                                  days=HISTORY_DAYS + streamed,
                                  start=today - timedelta(days=HISTORY_DAYS + streamed),
                                  amount_scale=amount_scale)
        return cls(config, HISTORY_DAYS)

    def history(self) -> pd.DataFrame:
        """The history's transactions: always without injected drift (it is what the
        model was trained on)."""
        return simulate(dataclasses.replace(self.config, days=self.history_days,
                                            amount_scale=1.0))

    def simulate_args(self) -> list[str]:
        """``fraudstream simulate --rate`` arguments that stream the days after it."""
        c = self.config
        return ["--customers", str(c.customers), "--terminals", str(c.terminals),
                "--days", str(c.days), "--start", c.start.date().isoformat(),
                "--seed", str(c.seed), "--first-day", str(self.history_days),
                "--amount-scale", repr(c.amount_scale)]


def materialize_history(settings: Settings, frame: pd.DataFrame) -> WriteSummary:
    """Backfill ``frame`` into the settings' feature store."""
    store = feature_state_store(settings, timeout_s=5.0)
    return materialize(history_of(frame), store, settings.redis_prefix,
                       settings.feature_ttl_days)
