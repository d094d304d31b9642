"""The handbook's 15 baseline features (chapter 3, "Baseline feature transformation"),
computed offline as its pandas rolling windows define them.

- ``TX_DURING_WEEKEND``: Saturday or Sunday; ``TX_DURING_NIGHT``: hour 0 to 6 inclusive.
- Per customer, over the windows (t - w days, t], the current transaction included: the
  number of transactions and their mean amount.
- Per terminal, shifted by the 7-day label delay, over (t - (7 + w) days, t - 7 days]: the
  number of transactions and the share of frauds among them (0 when there are none).

The handbook computes them with ``rolling('<n>d')`` per customer and per terminal; a time
window over the rows in time order is a pair of binary searches on (entity, time), which
is what this does, for the whole table at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS = (1, 7, 30)
DELAY_DAYS = 7
DAY_S = 86_400
HANDBOOK_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT",
    *(f"CUSTOMER_ID_{kind}_{w}DAY_WINDOW" for w in WINDOWS for kind in ("NB_TX", "AVG_AMOUNT")),
    *(f"TERMINAL_ID_{kind}_{w}DAY_WINDOW" for w in WINDOWS for kind in ("NB_TX", "RISK")),
)


def _by_entity(entity: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by (entity, time), time order kept among ties; and their sort keys."""
    order = np.lexsort((np.arange(entity.size), seconds, entity))
    span = int(seconds.max()) + (DELAY_DAYS + max(WINDOWS)) * DAY_S + 1
    return order, entity[order].astype(np.int64) * span + seconds[order]


def _window_starts(keys: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each end key, the position of the first row after it (rows <= end are before)."""
    return np.searchsorted(keys, ends, side="right")


def handbook_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The 15 features for every row of ``frame`` (our columns, rows in time order)."""
    seconds = frame["timestamp"].to_numpy(dtype=np.int64) // 1000
    amount = frame["amount"].to_numpy(dtype=np.float64)
    fraud = frame["is_fraud"].to_numpy(dtype=np.float64)
    when = pd.to_datetime(seconds, unit="s")
    out = {"TX_AMOUNT": amount,
           "TX_DURING_WEEKEND": (when.day_of_week >= 5).astype(np.int64),
           "TX_DURING_NIGHT": (when.hour <= 6).astype(np.int64)}

    order, keys = _by_entity(frame["customer_id"].to_numpy(), seconds)
    position = np.arange(keys.size)
    # In whole cents (every amount is whole cents, fivefold ones too) the sums are exact;
    # floats summed over 1.7 million rows would drift by 1e-10.
    cents = np.rint(amount * 100).astype(np.int64)
    sums = np.concatenate([[0], np.cumsum(cents[order])])
    for w in WINDOWS:
        first = _window_starts(keys, keys - w * DAY_S)
        count = position + 1 - first
        mean = (sums[position + 1] - sums[first]) / count / 100
        out[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = _unsort(order, count.astype(np.float64))
        out[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = _unsort(order, mean)

    order, keys = _by_entity(frame["terminal_id"].to_numpy(), seconds)
    frauds = np.concatenate([[0.0], np.cumsum(fraud[order])])
    delay_end = _window_starts(keys, keys - DELAY_DAYS * DAY_S)
    for w in WINDOWS:
        first = _window_starts(keys, keys - (DELAY_DAYS + w) * DAY_S)
        count = delay_end - first
        risk = np.divide(frauds[delay_end] - frauds[first], count,
                         out=np.zeros(count.size), where=count > 0)
        out[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = _unsort(order, count.astype(np.float64))
        out[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = _unsort(order, risk)
    return pd.DataFrame(out, index=frame.index)[list(HANDBOOK_FEATURES)]


def _unsort(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    out[order] = values
    return out
