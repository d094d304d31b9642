"""Transaction simulator after the fraud-detection handbook (Le Borgne et al.).

Customers and terminals sit on a 100x100 grid; a customer uses the terminals within a
radius. Each day a customer makes a Poisson number of transactions around noon with
normally distributed amounts. Three fraud scenarios are injected:

1. any amount over 220 is fraud;
2. each day 2 terminals are compromised: all their transactions in the next 28 days
   are fraud;
3. each day 3 customers are compromised: over the next 14 days a third of their
   transactions have their amount multiplied by 5 and are fraud.

Everything is vectorised and drawn from generators seeded by ``(seed, purpose, day)``,
so day ``d`` is the same whatever the total number of days simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

DAY_SECONDS = 86_400
DAY_MS = DAY_SECONDS * 1000
HANDBOOK_START = datetime(2018, 4, 1, tzinfo=UTC)
MIN_AMOUNT = 0.01  # the handbook can round a draw to 0.00; a payment is at least a cent

_PROFILES, _TERMINALS, _DAILY, _TERMINAL_FRAUD, _CUSTOMER_FRAUD, _SHARE = range(6)

COLUMNS = ["transaction_id", "timestamp", "customer_id", "terminal_id", "amount",
           "is_fraud", "fraud_scenario"]


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    radius: float = 5.0
    seed: int = 0
    start: datetime = HANDBOOK_START
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    fraud_amount_threshold: float = 220.0
    # Drift injection: every genuine amount times this (the customers' spending habits
    # change; fraud scenarios are applied afterwards, as before).
    amount_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.terminals < 1 or self.days < 1:
            raise ValueError("customers, terminals and days must be at least 1")
        if self.radius <= 0:
            raise ValueError("radius must be > 0")
        if not self.amount_scale > 0:
            raise ValueError("amount_scale must be > 0")

    @property
    def start_ms(self) -> int:
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp()) * 1000


@dataclass(frozen=True)
class Population:
    """Customer profiles and, per customer, the terminals they use (CSR layout)."""

    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_tx_per_day: np.ndarray
    terminal_offsets: np.ndarray  # customer c uses terminal_ids[offsets[c]:offsets[c+1]]
    terminal_ids: np.ndarray

    @property
    def terminal_counts(self) -> np.ndarray:
        return np.diff(self.terminal_offsets)


def _rng(config: SimulationConfig, purpose: int, day: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, purpose, day])


def build_population(config: SimulationConfig) -> Population:
    profiles = _rng(config, _PROFILES)
    customer_xy = profiles.uniform(0, 100, size=(config.customers, 2))
    mean_amount = profiles.uniform(5, 100, size=config.customers)
    mean_tx = profiles.uniform(0, 4, size=config.customers)
    terminal_xy = _rng(config, _TERMINALS).uniform(0, 100, size=(config.terminals, 2))

    offsets = np.zeros(config.customers + 1, dtype=np.int64)
    chunks: list[np.ndarray] = []
    step = max(1, 2_000_000 // config.terminals)
    for lo in range(0, config.customers, step):
        block = customer_xy[lo:lo + step, None, :] - terminal_xy[None, :, :]
        within = np.sqrt((block ** 2).sum(axis=2)) < config.radius
        rows, cols = np.nonzero(within)
        offsets[lo + 1:lo + 1 + within.shape[0]] = within.sum(axis=1)
        chunks.append(cols.astype(np.int64))
        del rows
    offsets = np.cumsum(offsets)
    terminal_ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return Population(mean_amount, mean_amount / 2, mean_tx, offsets, terminal_ids)


def _day_transactions(config: SimulationConfig, population: Population,
                      day: int) -> pd.DataFrame:
    rng = _rng(config, _DAILY, day)
    counts = rng.poisson(population.mean_tx_per_day)
    customer = np.repeat(np.arange(config.customers, dtype=np.int64), counts)
    seconds = rng.normal(DAY_SECONDS / 2, 20_000, size=customer.size).astype(np.int64)
    amount = rng.normal(population.mean_amount[customer], population.std_amount[customer])
    redraw = rng.uniform(0, population.mean_amount[customer] * 2)
    amount = np.where(amount < 0, redraw, amount)
    pick = rng.random(customer.size)
    n_terminals = population.terminal_counts[customer]
    keep = (seconds > 0) & (seconds < DAY_SECONDS) & (n_terminals > 0)
    customer, seconds, amount, pick = customer[keep], seconds[keep], amount[keep], pick[keep]
    n_terminals = n_terminals[keep]
    terminal = population.terminal_ids[
        population.terminal_offsets[customer] + (pick * n_terminals).astype(np.int64)
    ]
    frame = pd.DataFrame({
        "timestamp": config.start_ms + day * DAY_MS + seconds * 1000,
        "customer_id": customer,
        "terminal_id": terminal,
        "amount": np.maximum(np.round(amount * config.amount_scale, 2), MIN_AMOUNT),
    })
    return frame.sort_values(["timestamp", "customer_id"], kind="stable", ignore_index=True)


def _compromised(config: SimulationConfig, purpose: int, population_size: int,
                 per_day: int, day: int) -> np.ndarray:
    rng = _rng(config, purpose, day)
    return rng.choice(population_size, size=min(per_day, population_size), replace=False)


def _add_frauds(config: SimulationConfig, frame: pd.DataFrame, day: int) -> pd.DataFrame:
    amount = frame["amount"].to_numpy().copy()
    is_fraud = np.zeros(len(frame), dtype=np.int8)
    scenario = np.zeros(len(frame), dtype=np.int8)

    high = amount > config.fraud_amount_threshold
    is_fraud[high], scenario[high] = 1, 1

    first = max(0, day - config.terminal_compromise_days + 1)
    bad_terminals = np.concatenate([
        _compromised(config, _TERMINAL_FRAUD, config.terminals,
                     config.compromised_terminals_per_day, d) for d in range(first, day + 1)
    ])
    hit = np.isin(frame["terminal_id"].to_numpy(), bad_terminals)
    is_fraud[hit], scenario[hit] = 1, 2

    first = max(0, day - config.customer_compromise_days + 1)
    bad_customers = np.concatenate([
        _compromised(config, _CUSTOMER_FRAUD, config.customers,
                     config.compromised_customers_per_day, d) for d in range(first, day + 1)
    ])
    candidates = np.flatnonzero(np.isin(frame["customer_id"].to_numpy(), bad_customers))
    if candidates.size:
        chosen = _rng(config, _SHARE, day).choice(candidates, size=candidates.size // 3,
                                                  replace=False)
        amount[chosen] = np.round(amount[chosen] * 5, 2)
        is_fraud[chosen], scenario[chosen] = 1, 3

    return frame.assign(amount=amount, is_fraud=is_fraud, fraud_scenario=scenario)


def iter_days(config: SimulationConfig, population: Population | None = None,
              first_day: int = 0) -> Iterator[pd.DataFrame]:
    """Yield one DataFrame of transactions per simulated day, in time order."""
    population = population or build_population(config)
    next_id = 0
    for day in range(config.days):
        frame = _add_frauds(config, _day_transactions(config, population, day), day)
        ids = np.arange(next_id, next_id + len(frame), dtype=np.int64)
        next_id += len(frame)
        if day >= first_day:
            yield frame.assign(transaction_id=ids)[COLUMNS]


def simulate(config: SimulationConfig) -> pd.DataFrame:
    """The whole simulated dataset, sorted by time; ids are unique and increasing."""
    frames = list(iter_days(config))
    if not frames:
        return pd.DataFrame({name: [] for name in COLUMNS})
    return pd.concat(frames, ignore_index=True)
