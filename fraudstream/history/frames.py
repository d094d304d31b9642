"""A simulated frame (``fraudstream.simulator``) as a history to materialize."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudstream.features.backfill import History, without_coordinates
from fraudstream.features.online import LabelBatch, TransactionBatch


def history_of(frame: pd.DataFrame) -> History:
    """The frame's transactions in order (no topic coordinates) and its labels."""
    partitions, offsets = without_coordinates(len(frame))
    transactions = TransactionBatch(
        frame["customer_id"].astype(str).tolist(), frame["terminal_id"].astype(str).tolist(),
        frame["timestamp"].to_numpy(np.int64), frame["amount"].to_numpy(np.float64),
        partitions, offsets, frame["transaction_id"].astype(str).tolist())
    labels = LabelBatch(frame["transaction_id"].astype(str).tolist(),
                        frame["terminal_id"].astype(str).tolist(),
                        frame["timestamp"].to_numpy(np.int64),
                        frame["is_fraud"].to_numpy(bool))
    return History(transactions, labels)
