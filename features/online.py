"""Online feature engine: a batch of transactions in, a feature matrix out.

``fetch`` reads every customer of the batch in ONE round trip, applies the batch to the
in-memory states (in arrival order, replays skipped) and returns the matrix plus the
pending writes. ``update`` stores them in ONE round trip with compare-and-set, so a
concurrent writer (a zombie worker after a rebalance) can never make an event count
twice: on conflict the fresh state is re-read and the batch re-applied, replays skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features import customer_state
from features.customer_state import NO_GAP, CustomerState
from features.definitions import (
    COL_AMOUNT,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_NIGHT,
    COL_WEEKEND,
    DAY_MS,
    GAP_CAP_MS,
    N_FEATURES,
    WINDOWS,
    average_amount,
    calendar_flags,
    gap_seconds,
    to_cents,
)
from features.store import StateStore

MAX_CAS_ROUNDS = 5


@dataclass(frozen=True)
class TransactionBatch:
    """Columns of the valid transactions of one poll, in arrival order."""

    customer_ids: Sequence[str]
    timestamps_ms: np.ndarray  # int64
    amounts: np.ndarray  # float64
    partitions: np.ndarray  # int64
    offsets: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass
class PendingUpdate:
    """What ``fetch`` read and computed, to be written by ``update``."""

    batch: TransactionBatch
    keys: list[bytes]
    read: list[bytes | None]
    states: list[CustomerState]
    changed: list[bool]


class OnlineFeatureStore:
    def __init__(self, store: StateStore, prefix: str = "fs", ttl_days: int = 40) -> None:
        self._store = store
        self._prefix = prefix.encode()
        self._ttl_ms = ttl_days * DAY_MS

    def customer_key(self, customer_id: str) -> bytes:
        return customer_key(self._prefix, customer_id)

    def fetch(self, batch: TransactionBatch) -> tuple[np.ndarray, PendingUpdate]:
        unique: dict[str, int] = {}
        for cid in batch.customer_ids:
            unique.setdefault(cid, len(unique))
        keys = [self.customer_key(cid) for cid in unique]
        read = self._store.get_many(keys)
        states = [customer_state.decode(raw) for raw in read]
        index = np.fromiter((unique[c] for c in batch.customer_ids), dtype=np.int64,
                            count=len(batch))
        matrix, changed = apply_batch(states, index, batch)
        return matrix, PendingUpdate(batch, keys, read, states, changed)

    def update(self, pending: PendingUpdate) -> int:
        """Store the new states; returns how many keys needed a conflict retry."""
        todo = [i for i, changed in enumerate(pending.changed) if changed]
        retried = 0
        for _ in range(MAX_CAS_ROUNDS):
            if not todo:
                return retried
            keys = [pending.keys[i] for i in todo]
            values = customer_state.encode_many([pending.states[i] for i in todo])
            conflicts = self._store.compare_and_set_many(
                keys, [pending.read[i] for i in todo], values, self._ttl_ms)
            if not conflicts:
                return retried
            todo = [todo[c] for c in conflicts]
            retried += len(todo)
            self._reapply(pending, todo)
        raise RuntimeError(f"feature state kept changing under us for {len(todo)} keys")

    def _reapply(self, pending: PendingUpdate, positions: list[int]) -> None:
        fresh = self._store.get_many([pending.keys[i] for i in positions])
        wanted = {pos: k for k, pos in enumerate(positions)}
        states = [customer_state.decode(raw) for raw in fresh]
        key_of_event = [self.customer_key(c) for c in pending.batch.customer_ids]
        position_of_key = {pending.keys[pos]: pos for pos in positions}
        for event, key in enumerate(key_of_event):
            pos = position_of_key.get(key)
            if pos is None:
                continue
            state = states[wanted[pos]]
            if not state.has_applied(int(pending.batch.partitions[event]),
                                     int(pending.batch.offsets[event])):
                _add(state, pending.batch, event)
        for pos in positions:
            pending.read[pos] = fresh[wanted[pos]]
            pending.states[pos] = states[wanted[pos]]


def customer_key(prefix: bytes, customer_id: str) -> bytes:
    return prefix + b":c:" + customer_id.encode("utf-8")


def _add(state: CustomerState, batch: TransactionBatch, event: int) -> None:
    ts = int(batch.timestamps_ms[event])
    state.add(ts // DAY_MS, ts, int(to_cents(batch.amounts[event])),
              int(batch.partitions[event]), int(batch.offsets[event]))


def apply_batch(states: list[CustomerState], index: np.ndarray,
                batch: TransactionBatch) -> tuple[np.ndarray, list[bool]]:
    """Feature rows for every event, applying non-replayed events to ``states`` in order."""
    n = len(batch)
    matrix = np.empty((n, N_FEATURES), dtype=np.float64)
    matrix[:, COL_AMOUNT] = batch.amounts
    weekend, night = calendar_flags(batch.timestamps_ms)
    matrix[:, COL_WEEKEND] = weekend
    matrix[:, COL_NIGHT] = night
    cents = to_cents(batch.amounts)
    changed = [False] * len(states)
    counts = np.empty((n, len(WINDOWS)), dtype=np.int64)
    sums = np.empty((n, len(WINDOWS)), dtype=np.int64)
    gaps = np.empty(n, dtype=np.int64)
    ts_list = batch.timestamps_ms.tolist()
    for event in range(n):
        k = int(index[event])
        state = states[k]
        ts = ts_list[event]
        day = ts // DAY_MS
        partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
        if state.has_applied(partition, offset):
            replay_of_last = offset == state.offset
            gap = state.prev_gap if replay_of_last else ts - state.last_ts
            extra = 0, 0
        else:
            stored = state.add(day, ts, int(cents[event]), partition, offset)
            changed[k] = True
            gap = state.prev_gap
            extra = (0, 0) if stored else (1, int(cents[event]))
        gaps[event] = GAP_CAP_MS if gap == NO_GAP else gap
        for w_index, window in enumerate(WINDOWS):
            count, total = state.window_totals(day, window)
            counts[event, w_index] = count + extra[0]
            sums[event, w_index] = total + extra[1]
    for w_index, window in enumerate(WINDOWS):
        matrix[:, COL_COUNT[window]] = counts[:, w_index]
        matrix[:, COL_AVG[window]] = average_amount(sums[:, w_index], counts[:, w_index])
    matrix[:, COL_GAP] = gap_seconds(gaps)
    return matrix, changed


def default_matrix(batch: TransactionBatch) -> np.ndarray:
    """Features from the event alone, as for a customer's first transaction: used when the
    state cannot be read (degraded mode)."""
    n = len(batch)
    matrix = np.empty((n, N_FEATURES), dtype=np.float64)
    matrix[:, COL_AMOUNT] = batch.amounts
    weekend, night = calendar_flags(batch.timestamps_ms)
    matrix[:, COL_WEEKEND] = weekend
    matrix[:, COL_NIGHT] = night
    cents = to_cents(batch.amounts)
    for window in WINDOWS:
        matrix[:, COL_COUNT[window]] = 1.0
        matrix[:, COL_AVG[window]] = average_amount(cents, np.ones(n, dtype=np.int64))
    matrix[:, COL_GAP] = gap_seconds(np.full(n, GAP_CAP_MS, dtype=np.int64))
    return matrix
