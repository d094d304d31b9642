"""Batch size that keeps per-event in-worker latency within the budget.

Every event of a batch waits for the whole batch (decode to produce), so the batch's
duration IS each of its events' latency. Large batches amortise the fixed cost of the
Redis round trip and the scorer call; the budget caps how large they may get: ``fitted``
is the largest batch seen to fit it (with headroom), learned from the batches' own times.

Bursts are not a backlog: the broker hands events over a fetch at a time, so a worker that
keeps up still finds a few hundred waiting now and then, and draining them in budget-sized
batches takes milliseconds. Only a backlog that budget-sized batches would need longer than
``DRAIN_ABOVE_S`` to clear (a worker that cannot keep up, or one starting behind a
backlog) switches to draining: the largest batches, for throughput, since those events
have waited far longer than the budget already (misses are counted either way). Draining
ends once what is left would take less than ``DRAIN_UNTIL_S``. A worker that cannot keep
up in budget-sized batches stays about ``DRAIN_ABOVE_S`` behind, so it is kept short.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADROOM = 0.8  # aim below the budget: the tail is what the budget is about
GROW = 1.25
DRAIN_ABOVE_S = 0.05
DRAIN_UNTIL_S = 0.01


@dataclass
class BatchSizer:
    budget_s: float
    max_batch: int
    min_batch: int = 1
    fitted: int = 0  # the largest batch that fits the budget, as learned so far
    draining: bool = False

    def __post_init__(self) -> None:
        self.min_batch = max(1, min(self.min_batch, self.max_batch))
        self.fitted = max(self.min_batch, min(self.fitted or self.max_batch, self.max_batch))

    @property
    def size(self) -> int:
        """The most events the next batch may take."""
        return self.max_batch if self.draining else self.fitted

    def backlog_s(self, waiting: int) -> float:
        """How long budget-sized batches would take to clear ``waiting`` events."""
        return waiting / self.fitted * self.budget_s * HEADROOM

    def record(self, events: int, seconds: float, waiting: int = 0) -> None:
        """Adjust after a batch of ``events`` took ``seconds`` from decode to produce,
        with ``waiting`` events still behind it on its partitions."""
        if events <= 0:
            return
        target = self.budget_s * HEADROOM
        if seconds > target:  # what would have fitted, at this batch's cost per event
            self.fitted = max(self.min_batch, min(self.fitted, int(events * target / seconds)))
        elif events >= self.fitted and seconds < target / 2:
            self.fitted = min(self.max_batch, int(self.fitted * GROW) + 1)
        backlog = self.backlog_s(waiting)
        if not self.draining and backlog > DRAIN_ABOVE_S:
            self.draining = True
        elif self.draining and backlog < DRAIN_UNTIL_S:
            self.draining = False
