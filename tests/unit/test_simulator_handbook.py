"""fraudstream.simulator.handbook against the figures the handbook's notebooks print.

Chapter 3's ``SimulatedDataset.ipynb`` prints the profiles of its five-customer example,
customer 0's transactions over five days, the shape and fraud counts of the reference run
and the head and tail of its table; ``BaselineFeatureTransformation.ipynb`` prints more
rows of the same run (its first frauds, its last ones, customer 0's, the start of day 30).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.introsort import introsort_argsort
from fraudstream.simulator.generator import COLUMNS
from fraudstream.simulator.handbook import (
    FraudCounts,
    HandbookRun,
    customer_transactions,
    profiles,
    terminals_within,
    time_order,
)

START_S = 1_522_540_800  # 2018-04-01T00:00:00Z


def test_the_five_customer_example_profiles() -> None:
    profile = profiles(HandbookRun(customers=5, terminals=5))
    np.testing.assert_allclose(profile.customer_xy[:, 0],
                               [54.881350, 42.365480, 96.366276, 56.804456, 2.021840],
                               atol=5e-7)
    np.testing.assert_allclose(profile.mean_amount,
                               [62.262521, 46.570785, 80.213879, 11.748426, 78.924891],
                               atol=5e-7)
    np.testing.assert_allclose(profile.mean_tx_per_day,
                               [2.179533, 3.567092, 2.115580, 0.348517, 3.480049], atol=5e-7)
    # The example's terminals use seed 0 too.
    terminals = profiles(HandbookRun(customers=5, terminals=5, terminal_seed=0))
    np.testing.assert_allclose(terminals.terminal_xy[:, 1],
                               [71.518937, 54.488318, 64.589411, 89.177300, 38.344152],
                               atol=5e-7)
    assert terminals_within(terminals, 50) == [[0, 1, 2, 3], [0, 1, 2, 3], [1, 4], [0, 1, 2, 3],
                                               [2, 3]]


def test_customer_zero_over_five_days() -> None:
    profile = profiles(HandbookRun(customers=5, terminals=5))
    seconds, terminals, amounts = customer_transactions(
        0, float(profile.mean_amount[0]), float(profile.std_amount[0]),
        float(profile.mean_tx_per_day[0]), [0, 1, 2, 3], days=5)
    assert seconds == [26345, 68522, 64816, 141182, 137138, 143211, 118266, 159887, 216947,
                       204609, 206749, 228794, 200484, 263735, 293638, 404349, 373279]
    assert terminals == [3, 3, 0, 2, 3, 3, 2, 3, 2, 1, 1, 2, 1, 0, 2, 1, 2]
    assert amounts == [123.59, 46.51, 77.34, 32.35, 63.30, 13.59, 54.72, 51.89, 117.91, 67.72,
                       28.46, 50.25, 93.26, 46.40, 23.26, 71.96, 52.69]


@pytest.mark.parametrize("size", [2, 16, 17, 40, 1000, 50_000])
def test_the_time_sort_is_numpys_classic_introsort(size: int) -> None:
    # Many ties, as within a second of the reference run: ties are where sorts differ.
    keys = np.random.default_rng(size).integers(0, max(2, size // 8), size)
    assert introsort_argsort(keys).tolist() == time_order(keys).tolist()


@pytest.fixture
def reference(handbook_reference: tuple[pd.DataFrame, FraudCounts],
              ) -> tuple[pd.DataFrame, FraudCounts]:
    return handbook_reference


# (TRANSACTION_ID, seconds since the start, customer, terminal, amount, fraud, scenario)
PRINTED_ROWS = [
    (0, 31, 596, 3156, 57.16, 0, 0),
    (1, 130, 4961, 3412, 81.51, 0, 0),
    (2, 476, 2, 1365, 146.00, 0, 0),
    (3, 569, 4128, 8737, 64.49, 0, 0),
    (4, 634, 927, 9906, 50.99, 0, 0),
    (1754150, 15810996, 161, 655, 54.24, 0, 0),
    (1754151, 15811058, 4342, 6181, 1.23, 0, 0),
    (1754152, 15811101, 618, 1502, 6.62, 0, 0),
    (1754153, 15811192, 4056, 3067, 55.40, 0, 0),
    (1754154, 15811197, 3542, 9849, 23.59, 0, 0),
    # The first and last frauds; 5790, 10355 and 1754018 sit among ties of their second.
    (3527, 37063, 3774, 3059, 225.41, 1, 1),
    (5790, 48708, 4944, 6050, 222.26, 1, 1),
    (6549, 52922, 4625, 9102, 226.40, 1, 1),
    (9583, 90065, 3814, 6893, 59.15, 1, 3),
    (10355, 104615, 2513, 1143, 222.04, 1, 1),
    (1753524, 15796308, 1671, 3192, 128.60, 1, 3),
    (1753600, 15797340, 4166, 632, 17.39, 1, 2),
    (1753673, 15798652, 4097, 1558, 24.04, 1, 2),
    (1754014, 15805624, 100, 8604, 73.85, 1, 3),
    (1754018, 15805681, 4677, 8935, 45.85, 1, 2),
    # Customer 0, first and last, and the start of day 30.
    (1758, 26345, 0, 6076, 123.59, 0, 0),
    (8275, 64816, 0, 858, 77.34, 0, 0),
    (8640, 68522, 0, 6698, 46.51, 0, 0),
    (1751455, 15779497, 0, 2746, 27.90, 0, 0),
    (288062, 2592081, 3546, 2944, 18.71, 0, 0),
    (288066, 2592231, 1246, 7809, 52.08, 0, 0),
]


@pytest.mark.slow
def test_the_reference_run_counts(reference: tuple[pd.DataFrame, FraudCounts]) -> None:
    frame, counts = reference
    assert list(frame.columns) == COLUMNS
    assert frame.shape == (1_754_155, 7)
    assert int(frame["is_fraud"].sum()) == 14_681
    assert frame["is_fraud"].mean() == pytest.approx(0.008369271814634397, abs=1e-18)
    assert counts.added == (978, 9099, 4604)  # printed as each scenario runs
    assert counts.labelled == (973, 9077, 4631)  # the final TX_FRAUD_SCENARIO shapes
    assert frame["transaction_id"].tolist() == list(range(len(frame)))


@pytest.mark.slow
def test_the_reference_run_rows(reference: tuple[pd.DataFrame, FraudCounts]) -> None:
    frame = reference[0].set_index("transaction_id")
    for tx, seconds, customer, terminal, amount, fraud, scenario in PRINTED_ROWS:
        row = frame.loc[tx]
        assert (int(row["timestamp"]) // 1000 - START_S, int(row["customer_id"]),
                int(row["terminal_id"]), round(float(row["amount"]), 2),
                int(row["is_fraud"]), int(row["fraud_scenario"])) == (
            seconds, customer, terminal, amount, fraud, scenario), tx


@pytest.mark.slow
def test_the_first_and_last_days_digest(reference: tuple[pd.DataFrame, FraudCounts]) -> None:
    """Whole first and last days, pinned once they matched every printed figure above."""
    frame = reference[0]
    day = (frame["timestamp"] // 1000 - START_S) // 86_400
    digests = {}
    for d in (0, 182):
        rows = frame[day == d]
        digests[d] = (len(rows), int(rows["is_fraud"].sum()),
                      hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest())
    assert digests == {
        0: (9488, 3, "c75d6443a6e383ed37475642a198509ae68e095c71e84cbfd061f5c66d78e760"),
        182: (9649, 80, "87ab4681ef13627cdd0586407622c4e93306ddd1b2bf067e38d4086a7a51ee62"),
    }
