"""Online feature engine: a batch of transactions in, a feature matrix out.

``fetch`` reads every customer and terminal of the batch in ONE round trip, applies the
batch to the in-memory states in arrival order (replays skipped: each state carries the
high-water offsets that guard it) and returns the matrix plus the pending writes.
``update`` stores them in ONE round trip with compare-and-set, so a concurrent writer (a
zombie worker after a rebalance) can never make an event count twice: on conflict the
fresh state is re-read and the batch re-applied, replays skipped again.
``apply_labels`` counts confirmed frauds into terminal states the same way.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features import customer_state, terminal_state
from features.customer_state import NO_GAP, CustomerState
from features.definitions import (
    COL_AMOUNT,
    COL_AMOUNT_RATIO,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_NIGHT,
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    COL_WEEKEND,
    DAY_MS,
    GAP_CAP_MS,
    LABEL_DELAY_DAYS,
    N_FEATURES,
    WINDOWS,
    amount_over_mean,
    average_amount,
    calendar_flags,
    gap_seconds,
    risk,
    to_cents,
)
from features.store import StateStore
from features.terminal_state import TerminalState

MAX_CAS_ROUNDS = 5
LABEL_OUTCOMES = ("applied", "legit", "duplicate", "unknown", "too_old")


@dataclass(frozen=True)
class TransactionBatch:
    """Columns of the valid transactions of one poll, in arrival order."""

    customer_ids: Sequence[str]
    terminal_ids: Sequence[str]
    timestamps_ms: np.ndarray  # int64
    amounts: np.ndarray  # float64
    partitions: np.ndarray  # int64
    offsets: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class LabelBatch:
    """Confirmed labels: the labelled transaction's id, terminal and event time."""

    transaction_ids: Sequence[str]
    terminal_ids: Sequence[str]
    timestamps_ms: np.ndarray  # int64, time of the labelled transaction
    is_fraud: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.transaction_ids)


@dataclass
class _Entry:
    """One key of a batch: what was read, its state now, and how to redo the batch on it."""

    key: bytes
    read: bytes | None
    state: Any
    decode: Callable[[bytes | None], Any]
    encode: Callable[[Any], bytes]
    replay: Callable[[Any], None]
    changed: bool = False


@dataclass
class PendingUpdate:
    entries: list[_Entry]


class OnlineFeatureStore:
    def __init__(self, store: StateStore, prefix: str = "fs", ttl_days: int = 40) -> None:
        self._store = store
        self._prefix = prefix.encode()
        self._ttl_ms = ttl_days * DAY_MS

    def customer_key(self, customer_id: str) -> bytes:
        return customer_key(self._prefix, customer_id)

    def terminal_key(self, terminal_id: str) -> bytes:
        return terminal_key(self._prefix, terminal_id)

    # -- transactions -----------------------------------------------------------------

    def fetch(self, batch: TransactionBatch) -> tuple[np.ndarray, PendingUpdate]:
        customers = _positions(batch.customer_ids)
        terminals = _positions(batch.terminal_ids)
        keys = ([self.customer_key(c) for c in customers]
                + [self.terminal_key(t) for t in terminals])
        read = self._store.get_many(keys)
        n_customers = len(customers)
        cstates = [customer_state.decode(raw) for raw in read[:n_customers]]
        tstates = [terminal_state.decode(raw) for raw in read[n_customers:]]
        c_index = np.fromiter((customers[c] for c in batch.customer_ids), np.int64, len(batch))
        t_index = np.fromiter((terminals[t] for t in batch.terminal_ids), np.int64, len(batch))
        matrix, c_changed, t_changed = apply_batch(cstates, c_index, tstates, t_index, batch)
        c_events = _group(c_index, n_customers)
        t_events = _group(t_index, len(terminals))
        entries = []
        for k, key in enumerate(keys[:n_customers]):
            entries.append(_Entry(key, read[k], cstates[k], customer_state.decode,
                                  customer_state.encode,
                                  _customer_replay(batch, c_events[k]), c_changed[k]))
        for k, key in enumerate(keys[n_customers:]):
            entries.append(_Entry(key, read[n_customers + k], tstates[k],
                                  terminal_state.decode, terminal_state.encode,
                                  _terminal_replay(batch, t_events[k]), t_changed[k]))
        return matrix, PendingUpdate(entries)

    def update(self, pending: PendingUpdate) -> int:
        """Store the new states; returns how many keys needed a conflict retry."""
        todo = [e for e in pending.entries if e.changed]
        retried = 0
        for _ in range(MAX_CAS_ROUNDS):
            if not todo:
                return retried
            conflicts = self._store.compare_and_set_many(
                [e.key for e in todo], [e.read for e in todo],
                [e.encode(e.state) for e in todo], self._ttl_ms)
            if not conflicts:
                return retried
            todo = [todo[i] for i in conflicts]
            retried += len(todo)
            fresh = self._store.get_many([e.key for e in todo])
            for entry, raw in zip(todo, fresh, strict=True):
                entry.read = raw
                entry.state = entry.decode(raw)
                entry.replay(entry.state)
        raise RuntimeError(f"feature state kept changing under us for {len(todo)} keys")

    # -- labels -------------------------------------------------------------------------

    def apply_labels(self, labels: LabelBatch) -> collections.Counter[str]:
        """Count confirmed frauds into their terminal's day bucket, each at most once."""
        outcomes: list[str] = ["legit"] * len(labels)
        frauds = np.flatnonzero(labels.is_fraud)
        if frauds.size == 0:
            return collections.Counter(outcomes)
        terminals = _positions([labels.terminal_ids[i] for i in frauds])
        keys = [self.terminal_key(t) for t in terminals]
        read = self._store.get_many(keys)
        entries = []
        for k, (terminal, key) in enumerate(zip(terminals, keys, strict=True)):
            events = [int(i) for i in frauds if labels.terminal_ids[i] == terminal]
            replay = _label_replay(labels, events, outcomes)
            state = terminal_state.decode(read[k])
            replay(state)
            changed = any(outcomes[i] == "applied" for i in events)
            entries.append(_Entry(key, read[k], state, terminal_state.decode,
                                  terminal_state.encode, replay, changed))
        self.update(PendingUpdate(entries))
        return collections.Counter(outcomes)


def customer_key(prefix: bytes, customer_id: str) -> bytes:
    return prefix + b":c:" + customer_id.encode("utf-8")


def terminal_key(prefix: bytes, terminal_id: str) -> bytes:
    return prefix + b":t:" + terminal_id.encode("utf-8")


def _positions(ids: Sequence[str]) -> dict[str, int]:
    unique: dict[str, int] = {}
    for value in ids:
        unique.setdefault(value, len(unique))
    return unique


def _group(index: np.ndarray, size: int) -> list[list[int]]:
    """Event positions per key, in arrival order."""
    groups: list[list[int]] = [[] for _ in range(size)]
    for event, key in enumerate(index.tolist()):
        groups[key].append(event)
    return groups


def _customer_replay(batch: TransactionBatch, events: list[int]) -> Callable[[Any], None]:
    def replay(state: CustomerState) -> None:
        for event in events:
            partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
            if not state.has_applied(partition, offset):
                ts = int(batch.timestamps_ms[event])
                state.add(ts // DAY_MS, ts, int(to_cents(batch.amounts[event])), partition,
                          offset)
    return replay


def _terminal_replay(batch: TransactionBatch, events: list[int]) -> Callable[[Any], None]:
    def replay(state: TerminalState) -> None:
        for event in events:
            partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
            if not state.has_applied(partition, offset):
                state.add_transaction(int(batch.timestamps_ms[event]) // DAY_MS, partition,
                                      offset)
    return replay


def _label_replay(labels: LabelBatch, events: list[int],
                  outcomes: list[str]) -> Callable[[Any], None]:
    def replay(state: TerminalState) -> None:
        for event in events:
            outcomes[event] = state.add_fraud(int(labels.timestamps_ms[event]) // DAY_MS,
                                              labels.transaction_ids[event])
    return replay


def apply_batch(cstates: list[CustomerState], c_index: np.ndarray,
                tstates: list[TerminalState], t_index: np.ndarray,
                batch: TransactionBatch) -> tuple[np.ndarray, list[bool], list[bool]]:
    """Feature rows for every event, applying non-replayed events to the states in order."""
    n = len(batch)
    matrix = _calendar_columns(batch)
    cents = to_cents(batch.amounts)
    c_changed = [False] * len(cstates)
    t_changed = [False] * len(tstates)
    n_windows = len(WINDOWS)
    counts = np.empty((n, n_windows), dtype=np.int64)
    sums = np.empty((n, n_windows), dtype=np.int64)
    t_counts = np.empty((n, n_windows), dtype=np.int64)
    t_frauds = np.empty((n, n_windows), dtype=np.int64)
    gaps = np.empty(n, dtype=np.int64)
    ts_list = batch.timestamps_ms.tolist()
    partitions = batch.partitions.tolist()
    offsets = batch.offsets.tolist()
    cents_list = cents.tolist()
    for event in range(n):
        ts, partition, offset = ts_list[event], partitions[event], offsets[event]
        day = ts // DAY_MS
        k = int(c_index[event])
        state = cstates[k]
        if state.has_applied(partition, offset):
            gap = state.prev_gap if offset == state.offset else ts - state.last_ts
            extra = 0, 0
        else:
            stored = state.add(day, ts, cents_list[event], partition, offset)
            c_changed[k] = True
            gap = state.prev_gap
            extra = (0, 0) if stored else (1, cents_list[event])
        gaps[event] = GAP_CAP_MS if gap == NO_GAP else gap
        for w, window in enumerate(WINDOWS):
            count, total = state.window_totals(day, window)
            counts[event, w] = count + extra[0]
            sums[event, w] = total + extra[1]

        j = int(t_index[event])
        terminal = tstates[j]
        last = day - LABEL_DELAY_DAYS
        for w, window in enumerate(WINDOWS):
            t_counts[event, w], t_frauds[event, w] = terminal.window_totals(last - window + 1,
                                                                            last)
        if not terminal.has_applied(partition, offset):
            terminal.add_transaction(day, partition, offset)
            t_changed[j] = True
    _window_columns(matrix, counts, sums, gaps, t_counts, t_frauds)
    return matrix, c_changed, t_changed


def _calendar_columns(batch: TransactionBatch) -> np.ndarray:
    matrix = np.empty((len(batch), N_FEATURES), dtype=np.float64)
    matrix[:, COL_AMOUNT] = batch.amounts
    weekend, night = calendar_flags(batch.timestamps_ms)
    matrix[:, COL_WEEKEND] = weekend
    matrix[:, COL_NIGHT] = night
    return matrix


def _window_columns(matrix: np.ndarray, counts: np.ndarray, sums: np.ndarray,
                    gaps: np.ndarray, t_counts: np.ndarray, t_frauds: np.ndarray) -> None:
    for w, window in enumerate(WINDOWS):
        matrix[:, COL_COUNT[window]] = counts[:, w]
        matrix[:, COL_AVG[window]] = average_amount(sums[:, w], counts[:, w])
        matrix[:, COL_TERMINAL_COUNT[window]] = t_counts[:, w]
        matrix[:, COL_TERMINAL_RISK[window]] = risk(t_frauds[:, w], t_counts[:, w])
    matrix[:, COL_GAP] = gap_seconds(gaps)
    matrix[:, COL_AMOUNT_RATIO] = amount_over_mean(matrix[:, COL_AMOUNT],
                                                   matrix[:, COL_AVG[max(WINDOWS)]])


def default_matrix(batch: TransactionBatch) -> np.ndarray:
    """Features from the event alone, as for a first transaction at a new terminal: used
    when the state cannot be read (degraded mode)."""
    n = len(batch)
    matrix = _calendar_columns(batch)
    ones = np.ones((n, len(WINDOWS)), dtype=np.int64)
    cents = np.repeat(to_cents(batch.amounts)[:, None], len(WINDOWS), axis=1)
    zeros = np.zeros((n, len(WINDOWS)), dtype=np.int64)
    _window_columns(matrix, ones, cents, np.full(n, GAP_CAP_MS, dtype=np.int64), zeros, zeros)
    return matrix
