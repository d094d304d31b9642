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
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from features import customer_state, kernels, recent_ids, terminal_state
from features.customer_state import NO_GAP, NO_PARTITION, CustomerState, StateFormatError
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
from features.store import Conflicts, StateStore
from features.terminal_state import TerminalState, TerminalStateError

# A key that keeps losing compare-and-set (a hot terminal written by every worker) is
# retried with back-off, at least MIN_CAS_ROUNDS times and then for as long as the budget
# lasts; what is still left is kept and written first, before the next read, never
# dropped.
MIN_CAS_ROUNDS = 5
CAS_RETRY_BUDGET_S = 0.005
CAS_BACKOFF_S = (0.0, 0.0, 0.0002, 0.0005, 0.001)
UNREADABLE = (StateFormatError, TerminalStateError)
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
    transaction_ids: Sequence[str] = ()  # none given: no duplicate is recognised

    def __len__(self) -> int:
        return len(self.customer_ids)

    def only(self, keep: np.ndarray) -> TransactionBatch:
        """The events where ``keep`` (a bool per event) holds."""
        chosen = np.flatnonzero(keep).tolist()
        return TransactionBatch(
            [self.customer_ids[i] for i in chosen], [self.terminal_ids[i] for i in chosen],
            self.timestamps_ms[keep], self.amounts[keep], self.partitions[keep],
            self.offsets[keep],
            [self.transaction_ids[i] for i in chosen] if self.transaction_ids else ())


@dataclass(frozen=True)
class LabelBatch:
    """Confirmed labels: the labelled transaction's id, terminal and event time."""

    transaction_ids: Sequence[str]
    terminal_ids: Sequence[str]
    timestamps_ms: np.ndarray  # int64, time of the labelled transaction
    is_fraud: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.transaction_ids)


Redo = Callable[[bytes | None], bytes]


@dataclass
class _Entry:
    """One key of a batch: what was read, what to write, and how to redo it on a fresh
    value when a concurrent writer got there first (built only then: conflicts are rare)."""

    key: bytes
    read: bytes | None
    value: bytes
    make_redo: Callable[[], Redo]
    changed: bool = True


@dataclass
class PendingUpdate:
    """A batch's writes as parallel lists: the hot path makes no object per key."""

    keys: list[bytes]
    reads: list[bytes | None]
    values: list[bytes | None]  # None: the key is unchanged
    redo_for: Callable[[int], Redo]  # the redo of key i, built only on a conflict
    duplicates: list[int] = field(default_factory=list)  # events counted already

    @property
    def entries(self) -> list[_Entry]:
        """One entry per key, for inspection."""
        return [_Entry(key, read, value or b"", partial(self.redo_for, i), value is not None)
                for i, (key, read, value) in enumerate(zip(self.keys, self.reads, self.values,
                                                           strict=True))]


class OnlineFeatureStore:
    def __init__(self, store: StateStore, prefix: str = "fs", ttl_days: int = 40) -> None:
        self._store = store
        self._prefix = prefix.encode()
        self._ttl_ms = ttl_days * DAY_MS
        self._in_flight: tuple[PendingUpdate, list[int], Conflicts] | None = None
        self._retried = 0
        self._carried: list[_Entry] = []  # writes still conflicting after their batch
        self.unresolved = 0  # keys whose write was carried to the next batch, ever
        self._unreadable: collections.Counter[str] = collections.Counter()
        self._duplicates = 0
        self.calls = 0  # round trips made: only an answer from Redis proves it is up

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
        read = self._read(keys)
        n_customers = len(customers)
        c_index = np.fromiter((customers[c] for c in batch.customer_ids), np.int64, len(batch))
        t_index = np.fromiter((terminals[t] for t in batch.terminal_ids), np.int64, len(batch))
        try:
            update = _counted(batch, c_index, t_index, read, n_customers)
        except UNREADABLE:  # rare: find the values at fault, count them, read as absent
            update = _counted(batch, c_index, t_index,
                              self._readable(keys, read, n_customers), n_customers)
        matrix, values, redo_for, duplicates = update
        self._duplicates += len(duplicates)
        return matrix, PendingUpdate(keys, read, values, redo_for, duplicates)

    def update(self, pending: PendingUpdate) -> int:
        """Store the new states; returns how many keys needed a conflict retry."""
        self.begin_update(pending)
        return self.complete_update()

    def begin_update(self, pending: PendingUpdate) -> None:
        """Send the new states and return at once. The write is completed (its conflicts
        retried) by the next read of this store, in the same round trip as that read, or
        by ``complete_update``."""
        self.complete_update()
        changed = [i for i, value in enumerate(pending.values) if value is not None]
        sent = self._store.send_compare_and_set_many(
            [pending.keys[i] for i in changed], [pending.reads[i] for i in changed],
            [pending.values[i] for i in changed], self._ttl_ms)  # type: ignore[misc]
        self._in_flight = (pending, changed, sent)

    def complete_update(self) -> int:
        """Wait for the write in flight, if any; returns how many keys needed a retry."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            if self._carried:
                self._resolve_carried()
            return 0
        pending, changed, sent = in_flight
        retried = self._retry_conflicts(pending, changed, sent())
        if self._carried:
            self._resolve_carried()
        return retried

    def take_conflicts(self) -> int:
        """Keys retried after a concurrent write since the last call."""
        retried, self._retried = self._retried, 0
        return retried

    def take_duplicates(self) -> int:
        """Events recognised as duplicates (features.recent_ids) since the last call."""
        duplicates, self._duplicates = self._duplicates, 0
        return duplicates

    def take_unreadable(self) -> collections.Counter[str]:
        """Stored values that could not be parsed since the last call, by key prefix."""
        unreadable, self._unreadable = self._unreadable, collections.Counter()
        return unreadable

    def _read(self, keys: list[bytes]) -> list[bytes | None]:
        """Read ``keys`` after the write in flight: one round trip unless it conflicted."""
        self.calls += 1
        in_flight, self._in_flight = self._in_flight, None
        if self._carried:  # an earlier batch's write goes first, or its events are lost
            self._resolve_carried()
        if in_flight is None:
            return self._store.get_many(keys)
        pending, changed, sent = in_flight
        conflicts, values = self._store.get_many_after(sent, keys)
        if conflicts:
            self._retry_conflicts(pending, changed, conflicts)
            values = self._store.get_many(keys)  # the retries may have changed them
        return values

    def _readable(self, keys: list[bytes], read: list[bytes | None],
                  n_customers: int) -> list[bytes | None]:
        """``read`` with every value that does not parse as its kind's state replaced by
        None (absent), each counted by its key's prefix."""
        parsed: list[bytes | None] = []
        for i, (key, raw) in enumerate(zip(keys, read, strict=True)):
            try:
                (customer_state if i < n_customers else terminal_state).decode(raw)
            except UNREADABLE:
                self._unreadable[key[:key.index(b":", len(self._prefix) + 1)].decode(
                    "utf-8", "replace")] += 1
                raw = None
            parsed.append(raw)
        return parsed

    def _parsed(self, key: bytes, raw: bytes | None) -> bytes | None:
        """A freshly read value for a redo: one that does not parse counts as absent
        (the compare-and-set still expects the bytes read, so the write replaces it)."""
        if raw is None:
            return None
        customer = key.startswith(self._prefix + b":c:")
        try:
            (customer_state if customer else terminal_state).decode(raw)
        except UNREADABLE:
            self._unreadable[f"{self._prefix.decode()}:{'c' if customer else 't'}"] += 1
            return None
        return raw

    def _retry_conflicts(self, pending: PendingUpdate, changed: list[int],
                         conflicts: list[int]) -> int:
        if not conflicts:
            return 0
        entries = pending.entries
        return self._resolve([entries[changed[i]] for i in conflicts])

    def _resolve_carried(self) -> None:
        carried, self._carried = self._carried, []
        self._resolve(carried, already_counted=True)

    def _resolve(self, todo: list[_Entry], already_counted: bool = False) -> int:
        """Redo each entry on the value stored now and compare-and-set it again, with
        back-off, until all are written or the retry budget is spent; what is left is
        carried to the next call (written before the next read)."""
        retried = 0
        deadline = time.monotonic() + CAS_RETRY_BUDGET_S
        for attempt in itertools.count():
            if not todo or (attempt >= MIN_CAS_ROUNDS and time.monotonic() > deadline):
                break
            if attempt:
                time.sleep(CAS_BACKOFF_S[min(attempt, len(CAS_BACKOFF_S) - 1)])
            retried += len(todo)
            fresh = self._store.get_many([e.key for e in todo])
            for entry, raw in zip(todo, fresh, strict=True):
                entry.read = raw
                entry.value = entry.make_redo()(self._parsed(entry.key, raw))
            conflicts = self._store.compare_and_set_many(
                [e.key for e in todo], [e.read for e in todo], [e.value for e in todo],
                self._ttl_ms)
            todo = [todo[i] for i in conflicts]
        self._retried += retried
        if todo:
            if not already_counted:
                self.unresolved += len(todo)
            self._carried.extend(todo)
        return retried

    # -- labels -------------------------------------------------------------------------

    def apply_labels(self, labels: LabelBatch) -> collections.Counter[str]:
        """Count confirmed frauds into their terminal's day bucket, each at most once."""
        outcomes: list[str] = ["legit"] * len(labels)
        frauds = np.flatnonzero(labels.is_fraud)
        if frauds.size == 0:
            return collections.Counter(outcomes)
        terminals = _positions([labels.terminal_ids[i] for i in frauds])
        keys = [self.terminal_key(t) for t in terminals]
        read = self._readable(keys, self._read(keys), 0)
        redos, values = [], []
        for k, terminal in enumerate(terminals):
            events = [int(i) for i in frauds if labels.terminal_ids[i] == terminal]
            redo = _label_redo(labels, events, outcomes)
            value = redo(read[k])
            redos.append(redo)
            values.append(value if any(outcomes[i] == "applied" for i in events) else None)
        self.update(PendingUpdate(keys, read, values, redos.__getitem__))
        return collections.Counter(outcomes)


def customer_key(prefix: bytes, customer_id: str) -> bytes:
    return prefix + b":c:" + customer_id.encode("utf-8")


def terminal_key(prefix: bytes, terminal_id: str) -> bytes:
    return prefix + b":t:" + terminal_id.encode("utf-8")


def _counted(batch: TransactionBatch, c_index: np.ndarray, t_index: np.ndarray,
             read: list[bytes | None], n_customers: int,
             ) -> tuple[np.ndarray, list[bytes | None], Callable[[int], Redo], list[int]]:
    """The batch's matrix, its new values, their redos and its duplicates: the events
    but its duplicates (features.recent_ids) are counted into the states. A duplicate is
    scored as if it were new, on the state before it (without it counted)."""
    states, recent = recent_ids.split(read[:n_customers])
    ids = recent_ids.digests(batch.transaction_ids)
    stored = states + read[n_customers:]
    duplicates = recent_ids.find_duplicates(batch.partitions, batch.offsets, c_index,
                                            states, recent, ids)
    if duplicates:
        keep = np.ones(len(batch), dtype=bool)
        keep[duplicates] = False
        everything = _features(batch, c_index, t_index, stored, n_customers)[0]
        batch, c_index, t_index = batch.only(keep), c_index[keep], t_index[keep]
        ids = [d for d, kept in zip(ids, keep.tolist(), strict=True) if kept]
    if duplicates:  # some keys may have no event left: _features wants each to have one
        cs, c_local = np.unique(c_index, return_inverse=True)
        ts, t_local = np.unique(t_index, return_inverse=True)
        everything[keep], c_some, t_some = _features(
            batch, c_local, t_local,
            [stored[k] for k in cs.tolist()] + [stored[n_customers + j] for j in ts.tolist()],
            len(cs))
        matrix = everything
        c_values = _spread(c_some, cs, n_customers)
        t_values = _spread(t_some, ts, len(read) - n_customers)
    else:
        matrix, c_values, t_values = _features(batch, c_index, t_index, stored, n_customers)
    c_values = recent_ids.attach(c_values, recent, c_index, ids)

    def redo_for(i: int) -> Redo:
        if i < n_customers:
            mine = [d for d, k in zip(ids, c_index.tolist(), strict=False) if k == i]
            return recent_ids.remembering(_customer_redo(batch, c_index, i), mine)
        return _terminal_redo(batch, t_index, i - n_customers)

    return matrix, c_values + t_values, redo_for, duplicates


def _spread(values: list[bytes | None], keys: np.ndarray, size: int) -> list[bytes | None]:
    """Values of some ``keys`` as a list over all ``size`` keys (None elsewhere)."""
    out: list[bytes | None] = [None] * size
    for k, value in zip(keys.tolist(), values, strict=True):
        out[k] = value
    return out


def _features(batch: TransactionBatch, c_index: np.ndarray, t_index: np.ndarray,
              read: list[bytes | None], n_customers: int,
              ) -> tuple[np.ndarray, list[bytes | None], list[bytes | None]]:
    """The batch's feature matrix and the new values of its customers and terminals."""
    matrix = _calendar_columns(batch)
    counts, sums, gaps, c_values = _customer_features(batch, c_index, read[:n_customers])
    t_counts, t_frauds, t_values = _terminal_features(batch, t_index, read[n_customers:])
    _window_columns(matrix, counts, sums, gaps, t_counts, t_frauds)
    return matrix, c_values, t_values


def _positions(ids: Sequence[str]) -> dict[str, int]:
    unique: dict[str, int] = {}
    for value in ids:
        unique.setdefault(value, len(unique))
    return unique


def _customer_redo(batch: TransactionBatch, index: np.ndarray, key: int) -> Redo:
    events = np.flatnonzero(index == key).tolist()

    def redo(raw: bytes | None) -> bytes:
        state = customer_state.decode(raw)
        for event in events:
            partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
            if not state.has_applied(partition, offset):
                ts = int(batch.timestamps_ms[event])
                state.add(ts // DAY_MS, ts, int(to_cents(batch.amounts[event])), partition,
                          offset)
        return customer_state.encode(state)
    return redo


def _terminal_redo(batch: TransactionBatch, index: np.ndarray, key: int) -> Redo:
    events = np.flatnonzero(index == key).tolist()

    def redo(raw: bytes | None) -> bytes:
        state = terminal_state.decode(raw)
        for event in events:
            partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
            if not state.has_applied(partition, offset):
                state.add_transaction(int(batch.timestamps_ms[event]) // DAY_MS, partition,
                                      offset)
        return terminal_state.encode(state)
    return redo


def _label_redo(labels: LabelBatch, events: list[int],
                outcomes: list[str]) -> Callable[[bytes | None], bytes]:
    def redo(raw: bytes | None) -> bytes:
        state = terminal_state.decode(raw)
        for event in events:
            outcomes[event] = state.add_fraud(int(labels.timestamps_ms[event]) // DAY_MS,
                                              labels.transaction_ids[event])
        return terminal_state.encode(state)
    return redo


def _customer_event(state: CustomerState, ts: int, cents: int, partition: int,
                    offset: int) -> tuple[list[int], list[int], int, bool]:
    """The sequential definition for one event: (counts, cents sums, gap, applied)."""
    day = ts // DAY_MS
    if state.has_applied(partition, offset):
        gap = state.prev_gap if offset == state.offset else ts - state.last_ts
        extra, applied = (0, 0), False
    else:
        stored = state.add(day, ts, cents, partition, offset)
        gap = state.prev_gap
        extra, applied = ((0, 0) if stored else (1, cents)), True
    counts, sums = [], []
    for window in WINDOWS:
        count, total = state.window_totals(day, window)
        counts.append(count + extra[0])
        sums.append(total + extra[1])
    return counts, sums, (GAP_CAP_MS if gap == NO_GAP else gap), applied


def _terminal_event(state: TerminalState, day: int, partition: int,
                    offset: int) -> tuple[list[int], list[int], bool]:
    """The sequential definition for one event: (counts, frauds, applied)."""
    last = day - LABEL_DELAY_DAYS
    counts, frauds = [], []
    for window in WINDOWS:
        count, fraud = state.window_totals(last - window + 1, last)
        counts.append(count)
        frauds.append(fraud)
    if state.has_applied(partition, offset):
        return counts, frauds, False
    state.add_transaction(day, partition, offset)
    return counts, frauds, True


def apply_batch(cstates: list[CustomerState], c_index: np.ndarray,
                tstates: list[TerminalState], t_index: np.ndarray,
                batch: TransactionBatch) -> tuple[np.ndarray, list[bool], list[bool]]:
    """The sequential definition of a batch: feature rows for every event, applying
    non-replayed events to the states in arrival order."""
    n = len(batch)
    matrix = _calendar_columns(batch)
    cents = to_cents(batch.amounts).tolist()
    c_changed = [False] * len(cstates)
    t_changed = [False] * len(tstates)
    shape = (n, len(WINDOWS))
    counts, sums = np.empty(shape, np.int64), np.empty(shape, np.int64)
    t_counts, t_frauds = np.empty(shape, np.int64), np.empty(shape, np.int64)
    gaps = np.empty(n, dtype=np.int64)
    ts_list = batch.timestamps_ms.tolist()
    partitions, offsets = batch.partitions.tolist(), batch.offsets.tolist()
    for event in range(n):
        ts, partition, offset = ts_list[event], partitions[event], offsets[event]
        k, j = int(c_index[event]), int(t_index[event])
        counts[event], sums[event], gaps[event], applied = _customer_event(
            cstates[k], ts, cents[event], partition, offset)
        c_changed[k] |= applied
        t_counts[event], t_frauds[event], applied = _terminal_event(
            tstates[j], ts // DAY_MS, partition, offset)
        t_changed[j] |= applied
    _window_columns(matrix, counts, sums, gaps, t_counts, t_frauds)
    return matrix, c_changed, t_changed


def _ranks(index: np.ndarray, distinct: int) -> np.ndarray:
    """For each event, how many earlier events of the batch share its key (of
    ``distinct`` keys)."""
    if distinct == len(index):  # the common case in a small batch: no key repeats
        return np.zeros(len(index), dtype=np.int64)
    order = np.argsort(index, kind="stable")
    sorted_keys = index[order]
    starts = np.concatenate(([0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1))
    run_start = np.repeat(starts, np.diff(np.append(starts, len(index))))
    ranks = np.empty(len(index), dtype=np.int64)
    ranks[order] = np.arange(len(index)) - run_start
    return ranks


def _customer_features(batch: TransactionBatch, c_index: np.ndarray,
                       raws: list[bytes | None],
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes | None]]:
    """Customer columns for every event and the new value of every changed customer.

    Round r applies every customer's r-th event of the batch at once. A replay or an
    out-of-order day sends that customer, from that event on, to the sequential path."""
    n, size = len(batch), len(raws)
    rows = kernels.customer_rows(raws)
    ts, offsets, partitions = batch.timestamps_ms, batch.offsets, batch.partitions
    day = ts // DAY_MS
    cents = to_cents(batch.amounts)
    ranks = _ranks(c_index, size)
    counts = np.empty((n, len(WINDOWS)), dtype=np.int64)
    sums = np.empty((n, len(WINDOWS)), dtype=np.int64)
    gaps = np.empty(n, dtype=np.int64)
    changed = np.zeros(size, dtype=bool)
    sequential_from = np.full(size, n + 1, dtype=np.int64)  # rank from which to go slow
    for rank in range(int(ranks.max()) + 1 if n else 0):
        events = np.flatnonzero(ranks == rank)
        events = events[sequential_from[c_index[events]] > rank]
        if not events.size:
            continue
        keys = c_index[events]
        at = rows[keys]
        is_new = (at["partition"] == NO_PARTITION) & (at["offset"] < 0)
        replay = (at["partition"] == partitions[events]) & (offsets[events] <= at["offset"])
        ok = ~replay & (is_new | (day[events] >= at["last_day"]))
        sequential_from[keys[~ok]] = rank
        quick, keys, part = events[ok], keys[ok], at[ok]
        if quick.size:
            counts[quick], sums[quick], gaps[quick] = kernels.customer_step(
                part, day[quick], ts[quick], cents[quick], partitions[quick], offsets[quick])
            rows[keys] = part
            changed[keys] = True
    slow = np.flatnonzero(ranks >= sequential_from[c_index])
    if slow.size:
        states = {int(k): customer_state.decode(rows[int(k)].tobytes())
                  for k in np.unique(c_index[slow])}
        for event in slow.tolist():
            k = int(c_index[event])
            counts[event], sums[event], gaps[event], applied = _customer_event(
                states[k], int(ts[event]), int(cents[event]), int(partitions[event]),
                int(offsets[event]))
            changed[k] |= applied
        for k, state in states.items():
            encoded = customer_state.encode(state)
            rows[k] = np.frombuffer(encoded, dtype=customer_state.STATE_DTYPE)[0]
    blob = rows.tobytes()
    width = customer_state.STATE_BYTES
    values: list[bytes | None] = [blob[k * width:(k + 1) * width] if changed[k] else None
                                  for k in range(size)]
    return counts, sums, gaps, values


def _terminal_features(batch: TransactionBatch, t_index: np.ndarray,
                       raws: list[bytes | None],
                       ) -> tuple[np.ndarray, np.ndarray, list[bytes | None]]:
    """Terminal columns for every event and the new value of every changed terminal.

    Round r reads and counts every terminal's r-th event of the batch at once."""
    n, size = len(batch), len(raws)
    day = batch.timestamps_ms // DAY_MS
    partitions, offsets = batch.partitions.tolist(), batch.offsets.tolist()
    counts = np.empty((n, len(WINDOWS)), dtype=np.int64)
    frauds = np.empty((n, len(WINDOWS)), dtype=np.int64)
    rows, tails = kernels.terminal_rows(raws)
    is_new = np.array([not t.marks for t in tails], dtype=bool) & ~rows["counts"].any(axis=1)
    changed = np.zeros(size, dtype=bool)
    ranks = _ranks(t_index, size)
    for rank in range(int(ranks.max()) + 1 if n else 0):
        events = np.flatnonzero(ranks == rank)
        keys = t_index[events]
        at = rows[keys]
        counts[events], frauds[events] = kernels.terminal_windows(
            at["last_day"], at["counts"], at["frauds"], is_new[keys], day[events])
        apply = np.array([not tails[k].has_applied(partitions[e], offsets[e])
                          for k, e in zip(keys.tolist(), events.tolist(), strict=True)],
                         dtype=bool)
        if not apply.any():
            continue
        keys, events, part = keys[apply], events[apply], at[apply]
        rolled = kernels.terminal_count(part, is_new[keys], day[events])
        rows[keys] = part
        for k, e, was_rolled in zip(keys.tolist(), events.tolist(), rolled.tolist(),
                                    strict=True):
            tails[k].mark(partitions[e], offsets[e])
            if was_rolled:
                tails[k].prune(int(rows["last_day"][k]))
        is_new[keys] = False
        changed[keys] = True
    encoded = kernels.encode_terminals(rows, tails, np.flatnonzero(changed))
    values: list[bytes | None] = [encoded.get(k) for k in range(size)]
    return counts, frauds, values


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


FEATURES_DEGRADED = "features"  # a decision's ``degraded`` entry on default features


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
