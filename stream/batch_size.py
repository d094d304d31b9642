"""Batch size that keeps per-event in-worker latency within the budget.

Every event of a batch waits for the whole batch (decode to produce), so the batch's
duration IS each of its events' latency. Large batches amortise the fixed cost of the
Redis round trips and the scorer call; the budget caps how large they may get while the
worker keeps up. When it is behind (a poll fills the whole batch), events have already
waited in the backlog far longer than the budget: small batches would only drain it more
slowly, so the sizer then favours throughput (misses are still counted)."""

from __future__ import annotations

from dataclasses import dataclass

HEADROOM = 0.8  # aim below the budget: the tail is what the budget is about
GROW = 1.25


@dataclass
class BatchSizer:
    budget_s: float
    max_batch: int
    min_batch: int = 1
    size: int = 0

    def __post_init__(self) -> None:
        self.min_batch = max(1, min(self.min_batch, self.max_batch))
        self.size = self.size or self.max_batch

    def record(self, events: int, seconds: float, behind: bool = False) -> None:
        """Adjust after a batch of ``events`` took ``seconds`` from decode to produce;
        ``behind`` when the poll returned a full batch (a backlog is waiting)."""
        if events <= 0:
            return
        target = self.budget_s * HEADROOM
        if behind:
            self.size = min(self.max_batch, int(self.size * GROW) + 1)
        elif seconds > target:
            fitted = int(events * target / seconds)
            self.size = max(self.min_batch, min(self.size, fitted))
        elif events >= self.size and seconds < target / 2:
            self.size = min(self.max_batch, int(self.size * GROW) + 1)
