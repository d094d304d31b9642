"""Packed per-customer state: a ring of day buckets plus the high-water offset it guards.

One Redis string per customer, 177 bytes, little endian. The layout is pinned by a
golden-bytes unit test; bump VERSION when it changes. The stored value may carry
RECENT_IDS_BYTES more: digests of the customer's last transaction ids
(features.recent_ids), which ``decode`` ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fraudstream.features.definitions import CENTS_MAX, COUNT_MAX, GAP_CAP_MS, RING_DAYS

VERSION = 2
NO_PARTITION = 0xFFFF
NO_GAP = 0xFFFFFFFF

STATE_DTYPE = np.dtype([
    ("version", "u1"),
    ("partition", "<u2"),
    ("offset", "<i8"),
    ("last_day", "<i4"),
    ("last_ts", "<i8"),
    ("prev_gap", "<u4"),
    ("counts", "u1", (RING_DAYS,)),
    ("cents", "<u4", (RING_DAYS,)),
])
STATE_BYTES = STATE_DTYPE.itemsize
RECENT_IDS_BYTES = 10  # two 40-bit digests after the state (features.recent_ids)


class StateFormatError(ValueError):
    """A stored value is not a state this version can read."""


@dataclass
class CustomerState:
    """Mutable in-memory form of one customer's state."""

    partition: int = NO_PARTITION
    offset: int = -1
    last_day: int = 0
    last_ts: int = 0
    prev_gap: int = NO_GAP
    counts: list[int] = field(default_factory=lambda: [0] * RING_DAYS)
    cents: list[int] = field(default_factory=lambda: [0] * RING_DAYS)

    @property
    def is_new(self) -> bool:
        return self.partition == NO_PARTITION and self.offset < 0

    def window_totals(self, day: int, window: int) -> tuple[int, int]:
        """(count, cents) of the buckets for days day-window+1 .. day held in the ring."""
        if self.is_new:
            return 0, 0
        count = cents = 0
        oldest = self.last_day - RING_DAYS + 1
        for d in range(max(day - window + 1, oldest), min(day, self.last_day) + 1):
            slot = d % RING_DAYS
            count += self.counts[slot]
            cents += self.cents[slot]
        return count, cents

    def add(self, day: int, ts_ms: int, cents: int, partition: int, offset: int) -> bool:
        """Apply one transaction; returns False when its day is too old for the ring."""
        if self.is_new:
            self.last_day = day
            gap = NO_GAP
        else:
            gap = min(max(ts_ms - self.last_ts, 0), GAP_CAP_MS)
            if day > self.last_day:
                for d in range(max(self.last_day + 1, day - RING_DAYS + 1), day + 1):
                    self.counts[d % RING_DAYS] = 0
                    self.cents[d % RING_DAYS] = 0
                self.last_day = day
        stored = day > self.last_day - RING_DAYS
        if stored:
            slot = day % RING_DAYS
            self.counts[slot] = min(self.counts[slot] + 1, COUNT_MAX)
            self.cents[slot] = min(self.cents[slot] + cents, CENTS_MAX)
        self.prev_gap = gap
        self.last_ts = ts_ms
        self.partition = partition
        self.offset = offset
        return stored

    def has_applied(self, partition: int, offset: int) -> bool:
        """True when this event (or a later one of its partition) is already counted."""
        return partition == self.partition and offset <= self.offset


def decode(raw: bytes | None) -> CustomerState:
    if raw is None:
        return CustomerState()
    if len(raw) not in (STATE_BYTES, STATE_BYTES + RECENT_IDS_BYTES) or raw[0] != VERSION:
        raise StateFormatError(f"customer state of {len(raw)} bytes, version {raw[:1]!r}")
    row = np.frombuffer(raw[:STATE_BYTES], dtype=STATE_DTYPE)[0]
    return CustomerState(
        partition=int(row["partition"]), offset=int(row["offset"]),
        last_day=int(row["last_day"]), last_ts=int(row["last_ts"]),
        prev_gap=int(row["prev_gap"]), counts=row["counts"].tolist(),
        cents=row["cents"].tolist(),
    )


def encode_many(states: Sequence[CustomerState]) -> list[bytes]:
    rows = np.zeros(len(states), dtype=STATE_DTYPE)
    for i, state in enumerate(states):
        rows[i] = (VERSION, state.partition, state.offset, state.last_day, state.last_ts,
                   state.prev_gap, state.counts, state.cents)
    blob = rows.tobytes()
    return [blob[i * STATE_BYTES:(i + 1) * STATE_BYTES] for i in range(len(states))]


def encode(state: CustomerState) -> bytes:
    return encode_many([state])[0]
