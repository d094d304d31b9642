"""Packed per-customer state: a ring of day buckets plus the high-water offsets it guards.

One Redis string per customer, little endian: the 177-byte state (the layout is pinned by
a golden-bytes unit test; bump VERSION when it changes), then RECENT_IDS_BYTES of digests
of the customer's last transaction ids (features.recent_ids), then, only for a customer
whose events arrived on more than one partition, one mark (u2 partition, i8 offset) per
other partition, sorted by partition: the highest offset counted there. The state's own
guard is the partition and offset of its last counted event, so a producer that keys by
customer (one partition per customer) never pays for marks; one that does not still has
every partition's replays recognised. A value without digests (written before them) has
no marks either.

``encode`` and ``decode_guarded`` handle the state with its marks right behind it (the
form the compiled kernel reads and writes); ``stored_value`` and ``split_stored`` insert
and remove the digests between the two.
"""

from __future__ import annotations

import struct
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
MARK_BYTES = 10  # another partition's guard: u2 partition, i8 offset
_MARK = np.dtype([("partition", "<u2"), ("offset", "<i8")])
_GUARD = struct.Struct("<Hq")  # a (partition, offset): the state's from byte 1, a mark's


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
    marks: dict[int, int] = field(default_factory=dict)  # other partition -> its offset

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
        if partition != self.partition and self.partition != NO_PARTITION:
            self.marks[self.partition] = max(self.marks.get(self.partition, -1), self.offset)
        self.marks.pop(partition, None)
        self.partition = partition
        self.offset = offset
        return stored

    def has_applied(self, partition: int, offset: int) -> bool:
        """True when this event (or a later one of its partition) is already counted."""
        if partition == self.partition:
            return offset <= self.offset
        return offset <= self.marks.get(partition, -1)


def split_stored(raw: bytes) -> tuple[bytes, bytes]:
    """A stored value as (the state with its marks, the digests: b"" for none). A value
    of no known size is returned whole, for the state parser to judge."""
    size = len(raw) - STATE_BYTES - RECENT_IDS_BYTES
    if size >= 0 and size % MARK_BYTES == 0:
        return raw[:STATE_BYTES] + raw[STATE_BYTES + RECENT_IDS_BYTES:], \
            raw[STATE_BYTES:STATE_BYTES + RECENT_IDS_BYTES]
    return raw, b""


def stored_value(guarded: bytes, recent: bytes) -> bytes:
    """The value to store for a state with its marks and its digests (b"": none; a state
    with marks always carries the digests' place, so that the marks are found)."""
    if not recent and len(guarded) == STATE_BYTES:
        return guarded
    return guarded[:STATE_BYTES] + (recent or bytes(RECENT_IDS_BYTES)) + guarded[STATE_BYTES:]


def decode(raw: bytes | None) -> CustomerState:
    """The state of a stored value."""
    return CustomerState() if raw is None else decode_guarded(split_stored(raw)[0])


def decode_guarded(raw: bytes | None) -> CustomerState:
    """The state of its 177 bytes and the marks right behind them (``encode``'s form)."""
    if raw is None:
        return CustomerState()
    marks = len(raw) - STATE_BYTES
    if marks < 0 or marks % MARK_BYTES or raw[0] != VERSION:
        raise StateFormatError(f"customer state of {len(raw)} bytes, version {raw[:1]!r}")
    row = np.frombuffer(raw[:STATE_BYTES], dtype=STATE_DTYPE)[0]
    others = np.frombuffer(raw[STATE_BYTES:], dtype=_MARK)
    return CustomerState(
        partition=int(row["partition"]), offset=int(row["offset"]),
        last_day=int(row["last_day"]), last_ts=int(row["last_ts"]),
        prev_gap=int(row["prev_gap"]), counts=row["counts"].tolist(),
        cents=row["cents"].tolist(),
        marks=dict(zip(others["partition"].tolist(), others["offset"].tolist(), strict=True)),
    )


def guard_covers(guarded: bytes, partition: int, offset: int) -> bool:
    """Does the guard of a state with its marks say this record was counted already?
    (``CustomerState.has_applied`` without decoding the rest.)"""
    stored_partition, stored_offset = _GUARD.unpack_from(guarded, 1)
    if partition == stored_partition:
        return bool(offset <= stored_offset)
    for at in range(STATE_BYTES, len(guarded) - MARK_BYTES + 1, MARK_BYTES):
        mark_partition, mark_offset = _GUARD.unpack_from(guarded, at)
        if mark_partition == partition:
            return bool(offset <= mark_offset)
    return False


def encode_many(states: Sequence[CustomerState]) -> list[bytes]:
    """Each state's 177 bytes and its marks, sorted by partition."""
    rows = np.zeros(len(states), dtype=STATE_DTYPE)
    for i, state in enumerate(states):
        rows[i] = (VERSION, state.partition, state.offset, state.last_day, state.last_ts,
                   state.prev_gap, state.counts, state.cents)
    blob = rows.tobytes()
    return [blob[i * STATE_BYTES:(i + 1) * STATE_BYTES] + _encode_marks(state.marks)
            for i, state in enumerate(states)]


def _encode_marks(marks: dict[int, int]) -> bytes:
    if not marks:
        return b""
    return np.array(sorted(marks.items()), dtype=_MARK).tobytes()


def encode(state: CustomerState) -> bytes:
    return encode_many([state])[0]
