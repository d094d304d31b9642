"""Shadow scoring: a challenger model scored on the champion's batches, published to its
own topic, never deciding anything.

It runs after the champion's decisions of a batch are produced, so it is outside the
in-worker latency those decisions report; what it can still take is the worker's time,
and so the capacity that keeps the next batches inside the budget. ``ShadowBudget`` caps
that: a batch is shadowed only while the challenger's recent time stays under a share of
the champion's.
"""

from __future__ import annotations

DECAY = 0.98  # per batch: about the last 50 batches count


class ShadowBudget:
    def __init__(self, max_share: float, decay: float = DECAY) -> None:
        if max_share <= 0:
            raise ValueError("max_share must be > 0")
        self.max_share = max_share
        self._decay = decay
        self._champion_s = 0.0
        self._shadow_s = 0.0

    def allow(self) -> bool:
        """May the next batch be shadowed?"""
        return self._shadow_s <= self.max_share * self._champion_s

    def record_champion(self, seconds: float) -> None:
        """The champion's time for one batch (decode to produce)."""
        self._champion_s = self._champion_s * self._decay + seconds
        self._shadow_s *= self._decay

    def record_shadow(self, seconds: float) -> None:
        self._shadow_s += seconds

    @property
    def share(self) -> float:
        """The challenger's recent time as a share of the champion's."""
        return self._shadow_s / self._champion_s if self._champion_s > 0 else 0.0
