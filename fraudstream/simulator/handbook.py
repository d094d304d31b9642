"""The fraud-detection handbook's reference dataset, draw for draw.

The handbook (Le Borgne et al., chapter 3, "Transaction data simulator") generates its
reference run with 5,000 customers, 10,000 terminals and 183 days from 2018-04-01, radius
5: 1,754,155 transactions of which 14,681 are frauds. Its published tables are computed on
that run, so a comparison with them is only fair on the same transactions. This module
makes the same random draws in the same order with the same legacy generators (numpy's
``RandomState`` seeded per customer and per day, Python's ``random`` for terminal choice and
the third scenario), so it reproduces the run transaction for transaction.

Two details decide the result beyond the draws themselves:

- the handbook sorts the customers' transactions by time with pandas' default sort,
  numpy's introsort, which is not stable: ties within a second come out in the order that
  algorithm leaves them, and that order fixes the transaction ids the third scenario
  samples from. ``models.introsort`` is numpy's classic algorithm (as shipped before the
  SIMD sorts, which order ties differently), so the ids do not depend on the CPU;
- the third scenario multiplies amounts by five without rounding, and a transaction picked
  twice is multiplied twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudstream.simulator.generator import COLUMNS, DAY_SECONDS, HANDBOOK_START


@dataclass(frozen=True)
class HandbookRun:
    """The parameters of a handbook simulation; the defaults are its reference run."""

    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    radius: float = 5.0
    customer_seed: int = 0
    terminal_seed: int = 1

    @property
    def start_ms(self) -> int:
        return int(HANDBOOK_START.timestamp()) * 1000


REFERENCE = HandbookRun()


@dataclass(frozen=True)
class Profiles:
    customer_xy: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_tx_per_day: np.ndarray
    terminal_xy: np.ndarray


def profiles(run: HandbookRun) -> Profiles:
    """Customer and terminal profiles: one generator each, drawn one entity at a time."""
    rng = np.random.RandomState(run.customer_seed)
    rows = [(rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 100), rng.uniform(0, 4))
            for _ in range(run.customers)]
    customers = np.array(rows, dtype=np.float64).reshape(run.customers, 4)
    rng = np.random.RandomState(run.terminal_seed)
    terminals = np.array([(rng.uniform(0, 100), rng.uniform(0, 100))
                          for _ in range(run.terminals)], dtype=np.float64)
    mean_amount = customers[:, 2]
    return Profiles(customers[:, :2], mean_amount, mean_amount / 2, customers[:, 3],
                    terminals.reshape(run.terminals, 2))


def terminals_within(profile: Profiles, radius: float) -> list[list[int]]:
    """Per customer, the terminals strictly closer than ``radius``, in id order."""
    out = []
    for xy in profile.customer_xy:
        distance = np.sqrt(np.sum(np.square(xy - profile.terminal_xy), axis=1))
        out.append(np.flatnonzero(distance < radius).tolist())
    return out


def customer_transactions(customer: int, mean_amount: float, std_amount: float,
                          mean_tx: float, terminals: list[int], days: int,
                          ) -> tuple[list[int], list[int], list[float]]:
    """(seconds since the start, terminal, amount) of one customer, in generation order.

    The draws of a day: a Poisson count; per transaction a time (kept within the day), then
    an amount (redrawn uniformly when negative), then a terminal; a customer without a
    terminal in reach draws the same numbers but keeps nothing."""
    rng = np.random.RandomState(customer)
    choose = random.Random(customer).choice
    poisson, normal, uniform = rng.poisson, rng.normal, rng.uniform
    seconds: list[int] = []
    chosen: list[int] = []
    amounts: list[float] = []
    for day in range(days):
        for _ in range(poisson(mean_tx)):
            time_tx = int(normal(DAY_SECONDS / 2, 20_000))
            if 0 < time_tx < DAY_SECONDS:
                amount = normal(mean_amount, std_amount)
                if amount < 0:
                    amount = uniform(0, mean_amount * 2)
                if terminals:
                    seconds.append(time_tx + day * DAY_SECONDS)
                    chosen.append(choose(terminals))
                    amounts.append(float(np.round(amount, decimals=2)))
    return seconds, chosen, amounts


def time_order(seconds: np.ndarray) -> np.ndarray:
    """The handbook's ``sort_values('TX_DATETIME')``: numpy's unstable quicksort on
    datetimes, which for datetimes is still the classic introsort
    (``models.introsort.introsort_argsort`` is its reference, and a test holds the two equal)."""
    return np.argsort(seconds.astype("datetime64[s]"), kind="quicksort")


def generate_transactions(run: HandbookRun, profile: Profiles,
                          reach: list[list[int]]) -> pd.DataFrame:
    """Every customer's transactions, sorted by time as the handbook sorts them."""
    seconds: list[int] = []
    customers: list[int] = []
    terminals: list[int] = []
    amounts: list[float] = []
    for customer in range(run.customers):
        s, t, a = customer_transactions(customer, float(profile.mean_amount[customer]),
                                        float(profile.std_amount[customer]),
                                        float(profile.mean_tx_per_day[customer]),
                                        reach[customer], run.days)
        seconds += s
        terminals += t
        amounts += a
        customers += [customer] * len(s)
    frame = pd.DataFrame({
        "seconds": np.asarray(seconds, dtype=np.int64),
        "customer_id": np.asarray(customers, dtype=np.int64),
        "terminal_id": np.asarray(terminals, dtype=np.int64),
        "amount": np.asarray(amounts, dtype=np.float64),
    })
    return frame.iloc[time_order(frame["seconds"].to_numpy())].reset_index(drop=True)


@dataclass(frozen=True)
class FraudCounts:
    """What the handbook prints: frauds each scenario added when it ran, then the final
    count per scenario label (a later scenario relabels an earlier one's frauds)."""

    added: tuple[int, int, int]
    labelled: tuple[int, int, int]


def add_frauds(run: HandbookRun, frame: pd.DataFrame) -> tuple[pd.DataFrame, FraudCounts]:
    """The three scenarios in the handbook's order, each drawing from its own seeds."""
    amount = frame["amount"].to_numpy().copy()
    day = frame["seconds"].to_numpy() // DAY_SECONDS
    terminal = frame["terminal_id"].to_numpy()
    customer = frame["customer_id"].to_numpy()
    fraud = np.zeros(len(frame), dtype=np.int8)
    scenario = np.zeros(len(frame), dtype=np.int8)

    high = amount > 220
    fraud[high], scenario[high] = 1, 1
    after_1 = int(fraud.sum())
    last_day = int(day.max()) if len(day) else 0
    # pandas' Series.sample(n, random_state=day) is RandomState(day).permutation()[:n].
    for start in range(last_day):
        compromised = np.random.RandomState(start).permutation(run.terminals)[:2]
        hit = (day >= start) & (day < start + 28) & np.isin(terminal, compromised)
        fraud[hit], scenario[hit] = 1, 2
    after_2 = int(fraud.sum())
    for start in range(last_day):
        compromised = np.random.RandomState(start).permutation(run.customers)[:3]
        rows = np.flatnonzero((day >= start) & (day < start + 14)
                              & np.isin(customer, compromised))
        picked = np.asarray(random.Random(start).sample(rows.tolist(), k=int(len(rows) / 3)),
                            dtype=np.int64)
        amount[picked] = amount[picked] * 5
        fraud[picked], scenario[picked] = 1, 3
    after_3 = int(fraud.sum())
    one, two, three = (int((scenario == s).sum()) for s in (1, 2, 3))
    counts = FraudCounts((after_1, after_2 - after_1, after_3 - after_2), (one, two, three))
    return frame.assign(amount=amount, is_fraud=fraud, fraud_scenario=scenario), counts


def simulate_handbook(run: HandbookRun = REFERENCE) -> tuple[pd.DataFrame, FraudCounts]:
    """The handbook's dataset in our columns (``generator.COLUMNS``): transaction ids are
    the handbook's ``TRANSACTION_ID``, timestamps its ``TX_DATETIME`` in epoch ms."""
    profile = profiles(run)
    frame = generate_transactions(run, profile, terminals_within(profile, run.radius))
    frame, counts = add_frauds(run, frame)
    frame = frame.assign(transaction_id=np.arange(len(frame), dtype=np.int64),
                         timestamp=run.start_ms + frame["seconds"].to_numpy() * 1000)
    return frame[COLUMNS], counts
