"""Feature-state work the store could not take yet, kept in order, never dropped.

While Redis is slow or down, a batch is decided on default features and its events are
not yet counted into the state; a label batch is not yet counted either. Each goes here,
in arrival order, and is applied first when the store answers again, before anything
newer: replays of events already counted are skipped by the states' guard offsets, so
applying an entry twice (its write may have landed before the reply was lost) is safe.
Each entry carries ``on_written``, called once it is in the store: the worker holds the
batch's input offsets until then, so a crash never commits an uncounted event, and the
number of batches held bounds this backlog (consumption pauses, see stream.checkpoint).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch

Written = Callable[[], None]


@dataclass
class _Entry:
    batch: TransactionBatch | LabelBatch
    on_written: Written | None
    since: float = field(default_factory=time.monotonic)


class StateBacklog:
    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self.events = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, batch: TransactionBatch | LabelBatch, on_written: Written | None) -> None:
        self._entries.append(_Entry(batch, on_written))
        self.events += len(batch)

    def add_first(self, batch: TransactionBatch, on_written: Written | None) -> None:
        """A write that was in flight when the store failed: it goes before the rest."""
        self._entries.appendleft(_Entry(batch, on_written))
        self.events += len(batch)

    def age_s(self) -> float:
        return time.monotonic() - self._entries[0].since if self._entries else 0.0

    def flush(self, features: OnlineFeatureStore) -> None:
        """Apply every entry in order; raises (leaving the rest in place) on the first
        store error."""
        while self._entries:
            entry = self._entries[0]
            if isinstance(entry.batch, TransactionBatch):
                _, update = features.fetch(entry.batch)
                features.update(update)
            else:
                features.apply_labels(entry.batch)
            self._entries.popleft()
            self.events -= len(entry.batch)
            if entry.on_written is not None:
                entry.on_written()
