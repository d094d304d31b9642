"""Packed per-terminal state: day buckets of transactions and confirmed frauds, the
high-water offset of every input partition that has counted into it, and the ids of the
frauds already counted. Everything that guards the state lives in its one key, so check
and update stay one atomic step on Redis Cluster too.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from fraudstream.features.definitions import TERMINAL_RING_DAYS

VERSION = 2
COUNT_MAX = 2**32 - 1
_HEADER = struct.Struct("<BiHI")  # version, last_day, partitions, fraud ids
_RING = np.dtype([("counts", "<u4", (TERMINAL_RING_DAYS,)),
                  ("frauds", "<u4", (TERMINAL_RING_DAYS,))])
_MARK = np.dtype([("partition", "<u2"), ("offset", "<i8")])
_FRAUD = np.dtype([("day", "<i4"), ("id", "<u8")])


class TerminalStateError(ValueError):
    """A stored value is not a terminal state this version can read."""


def fraud_id(transaction_id: str) -> int:
    """Stable 64-bit id of a transaction, for counting each fraud label once."""
    return int.from_bytes(hashlib.blake2b(transaction_id.encode(), digest_size=8).digest(),
                          "little")


@dataclass
class TerminalState:
    last_day: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * TERMINAL_RING_DAYS)
    frauds: list[int] = field(default_factory=lambda: [0] * TERMINAL_RING_DAYS)
    marks: dict[int, int] = field(default_factory=dict)  # partition -> highest offset
    fraud_ids: dict[int, int] = field(default_factory=dict)  # fraud id -> day

    @property
    def is_new(self) -> bool:
        return not self.marks and not any(self.counts)

    def holds(self, day: int) -> bool:
        return not self.is_new and self.last_day - TERMINAL_RING_DAYS < day <= self.last_day

    def window_totals(self, first_day: int, last_day: int) -> tuple[int, int]:
        """(transactions, frauds) over days first_day .. last_day held in the ring."""
        if self.is_new:
            return 0, 0
        count = frauds = 0
        for day in range(max(first_day, self.last_day - TERMINAL_RING_DAYS + 1),
                         min(last_day, self.last_day) + 1):
            slot = day % TERMINAL_RING_DAYS
            count += self.counts[slot]
            frauds += self.frauds[slot]
        return count, frauds

    def has_applied(self, partition: int, offset: int) -> bool:
        return offset <= self.marks.get(partition, -1)

    def add_transaction(self, day: int, partition: int, offset: int) -> None:
        if self.is_new:
            self.last_day = day
        elif day > self.last_day:
            for d in range(max(self.last_day + 1, day - TERMINAL_RING_DAYS + 1), day + 1):
                self.counts[d % TERMINAL_RING_DAYS] = 0
                self.frauds[d % TERMINAL_RING_DAYS] = 0
            self.last_day = day
            oldest = day - TERMINAL_RING_DAYS
            self.fraud_ids = {k: d for k, d in self.fraud_ids.items() if d > oldest}
        self.marks[partition] = max(offset, self.marks.get(partition, -1))
        if self.holds(day):
            slot = day % TERMINAL_RING_DAYS
            self.counts[slot] = min(self.counts[slot] + 1, COUNT_MAX)

    def add_fraud(self, day: int, transaction_id: str) -> str:
        """Count one confirmed fraud; returns "applied" or why it was ignored."""
        key = fraud_id(transaction_id)
        if key in self.fraud_ids:
            return "duplicate"
        if not self.holds(day):
            return "unknown" if self.is_new or day > self.last_day else "too_old"
        slot = day % TERMINAL_RING_DAYS
        if self.frauds[slot] >= self.counts[slot]:
            return "unknown"  # more frauds than transactions seen that day
        self.frauds[slot] += 1
        self.fraud_ids[key] = day
        return "applied"


def encode(state: TerminalState) -> bytes:
    ring = np.zeros(1, dtype=_RING)
    ring[0] = (state.counts, state.frauds)
    marks = np.array(sorted(state.marks.items()), dtype=_MARK)
    frauds = np.array([(d, k) for k, d in state.fraud_ids.items()], dtype=_FRAUD)
    return (_HEADER.pack(VERSION, state.last_day, len(marks), len(frauds))
            + ring.tobytes() + marks.tobytes() + frauds.tobytes())


def decode(raw: bytes | None) -> TerminalState:
    if raw is None:
        return TerminalState()
    if len(raw) < _HEADER.size + _RING.itemsize or raw[0] != VERSION:
        raise TerminalStateError(f"terminal state of {len(raw)} bytes, version {raw[:1]!r}")
    _, last_day, n_marks, n_frauds = _HEADER.unpack_from(raw)
    offset = _HEADER.size
    expected = offset + _RING.itemsize + n_marks * _MARK.itemsize + n_frauds * _FRAUD.itemsize
    if len(raw) != expected:
        raise TerminalStateError(f"terminal state of {len(raw)} bytes, expected {expected}")
    ring = np.frombuffer(raw, dtype=_RING, count=1, offset=offset)[0]
    offset += _RING.itemsize
    marks = np.frombuffer(raw, dtype=_MARK, count=n_marks, offset=offset)
    offset += n_marks * _MARK.itemsize
    frauds = np.frombuffer(raw, dtype=_FRAUD, count=n_frauds, offset=offset)
    return TerminalState(
        last_day=last_day, counts=ring["counts"].tolist(), frauds=ring["frauds"].tolist(),
        marks={int(p): int(o) for p, o in zip(marks["partition"], marks["offset"], strict=True)},
        fraud_ids={int(k): int(d) for d, k in zip(frauds["day"], frauds["id"], strict=True)},
    )
