"""Vectorised feature arithmetic for the common case: one event per key in the batch.

``features.online`` sends an event here when its customer (or terminal) appears once in
the batch, the event is not a replay, and its day does not move backwards; everything
else takes the sequential path in ``customer_state`` / ``terminal_state``, which is the
definition these kernels are tested against.
"""

from __future__ import annotations

import struct

import numpy as np

from features.customer_state import (
    NO_GAP,
    NO_PARTITION,
    STATE_DTYPE,
    VERSION,
    StateFormatError,
)
from features.definitions import (
    CENTS_MAX,
    COUNT_MAX,
    GAP_CAP_MS,
    LABEL_DELAY_DAYS,
    RING_DAYS,
    TERMINAL_RING_DAYS,
    WINDOWS,
)
from features.terminal_state import COUNT_MAX as TERMINAL_COUNT_MAX
from features.terminal_state import VERSION as TERMINAL_VERSION
from features.terminal_state import TerminalStateError

_CUSTOMER_SLOTS = np.arange(RING_DAYS, dtype=np.int64)
_TERMINAL_SLOTS = np.arange(TERMINAL_RING_DAYS, dtype=np.int64)
EMPTY_CUSTOMER = np.zeros(1, dtype=STATE_DTYPE)
EMPTY_CUSTOMER["version"] = VERSION
EMPTY_CUSTOMER["partition"] = NO_PARTITION
EMPTY_CUSTOMER["offset"] = -1
EMPTY_CUSTOMER["prev_gap"] = NO_GAP


def _slot_days(last_day: np.ndarray, slots: np.ndarray, ring: int) -> np.ndarray:
    """The day each ring slot holds, for rings whose newest day is ``last_day``."""
    return last_day[:, None] - np.mod(last_day[:, None] - slots[None, :], ring)


def customer_step(rows: np.ndarray, day: np.ndarray, ts: np.ndarray, cents: np.ndarray,
                  partition: np.ndarray, offset: np.ndarray,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one in-order event to each row; return (counts, cents sums, gaps) per event.

    ``rows`` are customer states (STATE_DTYPE), updated in place; day >= last_day or the
    state is new."""
    is_new = (rows["partition"] == NO_PARTITION) & (rows["offset"] < 0)
    last = np.where(is_new, day, rows["last_day"].astype(np.int64))
    counts = np.where(is_new[:, None], 0, rows["counts"]).astype(np.int64)
    sums = np.where(is_new[:, None], 0, rows["cents"]).astype(np.int64)
    held = _slot_days(last, _CUSTOMER_SLOTS, RING_DAYS)
    keep = held > (day - RING_DAYS)[:, None]  # still inside the ring once it rolls to day
    counts = np.where(keep, counts, 0)
    sums = np.where(keep, sums, 0)
    slot = np.mod(day, RING_DAYS)
    index = np.arange(len(day))
    today = held[index, slot] == day
    counts[index, slot] = np.where(today, counts[index, slot], 0)
    sums[index, slot] = np.where(today, sums[index, slot], 0)
    counts[index, slot] = np.minimum(counts[index, slot] + 1, COUNT_MAX)
    sums[index, slot] = np.minimum(sums[index, slot] + cents, CENTS_MAX)

    new_days = _slot_days(day, _CUSTOMER_SLOTS, RING_DAYS)
    window_counts = np.empty((len(day), len(WINDOWS)), dtype=np.int64)
    window_sums = np.empty((len(day), len(WINDOWS)), dtype=np.int64)
    for w, window in enumerate(WINDOWS):
        inside = new_days > (day - window)[:, None]
        window_counts[:, w] = (counts * inside).sum(axis=1)
        window_sums[:, w] = (sums * inside).sum(axis=1)
    gap = np.where(is_new, GAP_CAP_MS,
                   np.clip(ts - rows["last_ts"], 0, GAP_CAP_MS)).astype(np.int64)

    rows["counts"] = counts
    rows["cents"] = sums
    rows["last_day"] = day
    rows["prev_gap"] = np.where(is_new, NO_GAP, gap)
    rows["last_ts"] = ts
    rows["partition"] = partition
    rows["offset"] = offset
    rows["version"] = VERSION
    return window_counts, window_sums, gap


TERMINAL_PREFIX_DTYPE = np.dtype([
    ("version", "u1"), ("last_day", "<i4"), ("n_marks", "<u2"), ("n_frauds", "<u4"),
    ("counts", "<u4", (TERMINAL_RING_DAYS,)), ("frauds", "<u4", (TERMINAL_RING_DAYS,)),
])


def terminal_windows(last_day: np.ndarray, counts: np.ndarray, frauds: np.ndarray,
                     is_new: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(transactions, frauds) per window over days d-7-W+1 .. d-7, from the rings as they
    are (the event's own day is never inside its windows)."""
    held = _slot_days(last_day.astype(np.int64), _TERMINAL_SLOTS, TERMINAL_RING_DAYS)
    counts = np.where(is_new[:, None], 0, counts).astype(np.int64)
    frauds = np.where(is_new[:, None], 0, frauds).astype(np.int64)
    last = (day - LABEL_DELAY_DAYS)[:, None]
    out_counts = np.empty((len(day), len(WINDOWS)), dtype=np.int64)
    out_frauds = np.empty((len(day), len(WINDOWS)), dtype=np.int64)
    for w, window in enumerate(WINDOWS):
        inside = (held <= last) & (held > last - window)
        out_counts[:, w] = (counts * inside).sum(axis=1)
        out_frauds[:, w] = (frauds * inside).sum(axis=1)
    return out_counts, out_frauds


def terminal_count(rows: np.ndarray, is_new: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Count one transaction per row on ``day`` (rolling the ring forward when the day is
    newer). Returns the rows whose ring rolled, whose fraud ids may need pruning."""
    last = np.where(is_new, day, rows["last_day"].astype(np.int64))
    rolls = day > last
    new_last = np.maximum(last, day)
    held = _slot_days(last, _TERMINAL_SLOTS, TERMINAL_RING_DAYS)
    keep = (held > (new_last - TERMINAL_RING_DAYS)[:, None]) & ~is_new[:, None]
    counts = np.where(keep, rows["counts"], 0).astype(np.int64)
    frauds = np.where(keep, rows["frauds"], 0).astype(np.int64)
    inside = day > new_last - TERMINAL_RING_DAYS
    index = np.flatnonzero(inside)
    slot = np.mod(day[index], TERMINAL_RING_DAYS)
    counts[index, slot] = np.minimum(counts[index, slot] + 1, TERMINAL_COUNT_MAX)
    rows["counts"] = counts
    rows["frauds"] = frauds
    rows["last_day"] = new_last
    return rolls & ~is_new


def customer_rows(raws: list[bytes | None]) -> np.ndarray:
    """Stored customer values as one structured array (new customers as empty states)."""
    empty = EMPTY_CUSTOMER.tobytes()
    for raw in raws:
        if raw is not None and (len(raw) != STATE_DTYPE.itemsize or raw[0] != VERSION):
            raise StateFormatError(f"customer state of {len(raw)} bytes, version {raw[:1]!r}")
    blob = b"".join(empty if raw is None else raw for raw in raws)
    return np.frombuffer(blob, dtype=STATE_DTYPE).copy()


_MARK = struct.Struct("<Hq")
_FRAUD_BYTES = 12  # (i32 day, u64 id)
_FRAUD_DAYS = np.dtype([("day", "<i4"), ("id", "<u8")])
_EMPTY_PREFIX = np.zeros(1, dtype=TERMINAL_PREFIX_DTYPE)
_EMPTY_PREFIX["version"] = TERMINAL_VERSION
_PREFIX_BYTES = TERMINAL_PREFIX_DTYPE.itemsize


class TerminalTail:
    """The variable part of a terminal value: partition marks and counted fraud ids."""

    __slots__ = ("frauds", "marks")

    def __init__(self, marks: dict[int, int], frauds: bytes) -> None:
        self.marks = marks
        self.frauds = frauds

    def has_applied(self, partition: int, offset: int) -> bool:
        return offset <= self.marks.get(partition, -1)

    def mark(self, partition: int, offset: int) -> None:
        self.marks[partition] = max(offset, self.marks.get(partition, -1))

    def prune(self, last_day: int) -> None:
        """Forget fraud ids whose day has left the ring."""
        if self.frauds:
            ids = np.frombuffer(self.frauds, dtype=_FRAUD_DAYS)
            self.frauds = ids[ids["day"] > last_day - TERMINAL_RING_DAYS].tobytes()

    def to_bytes(self) -> bytes:
        return b"".join(_MARK.pack(p, o) for p, o in sorted(self.marks.items())) + self.frauds


def terminal_rows(raws: list[bytes | None]) -> tuple[np.ndarray, list[TerminalTail]]:
    """Stored terminal values as one structured array of prefixes plus their tails."""
    empty = _EMPTY_PREFIX.tobytes()
    prefixes: list[bytes] = []
    tails: list[TerminalTail] = []
    for raw in raws:
        if raw is None:
            prefixes.append(empty)
            tails.append(TerminalTail({}, b""))
            continue
        if len(raw) < _PREFIX_BYTES or raw[0] != TERMINAL_VERSION:
            raise TerminalStateError(f"terminal state of {len(raw)} bytes, version {raw[:1]!r}")
        n_marks = int.from_bytes(raw[5:7], "little")
        n_frauds = int.from_bytes(raw[7:11], "little")
        marks_end = _PREFIX_BYTES + n_marks * _MARK.size
        if len(raw) != marks_end + n_frauds * _FRAUD_BYTES:
            raise TerminalStateError(f"terminal state of {len(raw)} bytes is truncated")
        prefixes.append(raw[:_PREFIX_BYTES])
        tails.append(TerminalTail(dict(_MARK.iter_unpack(raw[_PREFIX_BYTES:marks_end])),
                                  raw[marks_end:]))
    rows = np.frombuffer(b"".join(prefixes), dtype=TERMINAL_PREFIX_DTYPE).copy()
    return rows, tails


def encode_terminals(rows: np.ndarray, tails: list[TerminalTail],
                     which: np.ndarray) -> dict[int, bytes]:
    """New stored values of the terminals ``which`` (indices into rows and tails)."""
    if not which.size:
        return {}
    chosen = rows[which]
    chosen["version"] = TERMINAL_VERSION
    chosen["n_marks"] = [len(tails[k].marks) for k in which.tolist()]
    chosen["n_frauds"] = [len(tails[k].frauds) // _FRAUD_BYTES for k in which.tolist()]
    blob = chosen.tobytes()
    return {k: blob[i * _PREFIX_BYTES:(i + 1) * _PREFIX_BYTES] + tails[k].to_bytes()
            for i, k in enumerate(which.tolist())}
