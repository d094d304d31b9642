"""Feature drift: the population stability index of each feature over a sliding window of
recent events, against the training distribution stored in the model artifact.

PSI = sum over bins of (recent - baseline) * ln(recent / baseline), with the training
quantile bins. Rows are binned in blocks of ``block`` events, not per batch: binning costs
one ``searchsorted`` per feature, and a 500-row block amortises it to well under a
microsecond per event."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

EPSILON = 1e-4  # an empty bin is treated as this share: ln(0) would be infinite
ALERT_PSI = 0.2  # the customary "significant shift" level
# The weekend and night flags follow the clock, not the traffic: a window of a few hours
# holds no weekend on a Tuesday and all night at 3 a.m., against a baseline of whole
# weeks. Their PSI is exported but never alerted on (deploy/prometheus/alerts.yml too).
CALENDAR_FEATURES = frozenset({"is_weekend", "is_night"})


def alerted(psi: Mapping[str, float]) -> dict[str, float]:
    """The PSI of the features a drift alert watches (every one but the calendar's)."""
    return {name: value for name, value in psi.items() if name not in CALENDAR_FEATURES}


class DriftMonitor:
    def __init__(self, baseline: Mapping[str, Mapping[str, Sequence[float]]],
                 feature_names: Sequence[str], window: int = 20_000,
                 block: int = 500) -> None:
        missing = [name for name in feature_names if name not in baseline]
        if missing:
            raise ValueError(f"no drift baseline for {', '.join(missing)}")
        self.names = list(feature_names)
        self._edges = [np.asarray(baseline[n]["edges"], dtype=np.float64) for n in self.names]
        self._expected = [np.maximum(np.asarray(baseline[n]["proportions"]), EPSILON)
                          for n in self.names]
        self._block = block
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._blocks: deque[list[np.ndarray]] = deque(maxlen=max(1, window // block))
        self._totals = [np.zeros(e.size, dtype=np.int64) for e in self._expected]
        self._rows = 0

    def observe(self, matrix: np.ndarray) -> bool:
        """Add a batch's feature rows; True when a block was binned (PSI may change)."""
        self._pending.append(matrix)
        self._pending_rows += matrix.shape[0]
        if self._pending_rows < self._block:
            return False
        rows = np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        if len(self._blocks) == self._blocks.maxlen:
            for total, old in zip(self._totals, self._blocks[0], strict=True):
                total -= old
            self._rows -= int(self._blocks[0][0].sum())
        counts = [np.bincount(np.searchsorted(edges, rows[:, j], side="right"),
                              minlength=expected.size)
                  for j, (edges, expected) in enumerate(zip(self._edges, self._expected,
                                                            strict=True))]
        self._blocks.append(counts)
        for total, new in zip(self._totals, counts, strict=True):
            total += new
        self._rows += rows.shape[0]
        return True

    @property
    def rows(self) -> int:
        """Events in the window."""
        return self._rows

    def psi(self) -> dict[str, float]:
        if self._rows == 0:
            return dict.fromkeys(self.names, 0.0)
        return {name: population_stability(total / self._rows, expected)
                for name, total, expected in zip(self.names, self._totals, self._expected,
                                                 strict=True)}


def population_stability(actual: np.ndarray, expected: np.ndarray) -> float:
    actual = np.maximum(actual, EPSILON)
    expected = np.maximum(expected, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
