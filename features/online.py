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
import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from fraudstream.features import customer_state, kernels, recent_ids, resp_pack, terminal_state
from fraudstream.features.byte_columns import ByteColumn
from fraudstream.features.customer_state import NO_GAP, CustomerState, StateFormatError
from fraudstream.features.definitions import (
    COL_AMOUNT,
    COL_AMOUNT_OVER_1D,
    COL_AMOUNT_RATIO,
    COL_AVG,
    COL_COUNT,
    COL_GAP,
    COL_MEAN_1D_OVER_30D,
    COL_MEAN_OVER_BEFORE,
    COL_NIGHT,
    COL_TERMINAL_COUNT,
    COL_TERMINAL_RISK,
    COL_WEEKEND,
    DAY_MS,
    GAP_CAP_MS,
    LABEL_DELAY_DAYS,
    N_FEATURES,
    TOTAL_WINDOWS,
    WINDOWS,
    amount_over_mean,
    average_amount,
    calendar_flags,
    gap_seconds,
    mean_over_before,
    risk,
    to_cents,
)
from fraudstream.features.store import Conflicts, RedisStateStore, StateStore
from fraudstream.features.terminal_state import TerminalState, TerminalStateError

# A key that keeps losing compare-and-set (a hot terminal written by every worker) is
# retried with back-off, at least MIN_CAS_ROUNDS times and then for as long as the budget
# lasts; what is still left is kept and written first, before the next read, never
# dropped.
MIN_CAS_ROUNDS = 5
CAS_RETRY_BUDGET_S = 0.005
CAS_BACKOFF_S = (0.0, 0.0, 0.0002, 0.0005, 0.001)
UNREADABLE = (StateFormatError, TerminalStateError)
LABEL_OUTCOMES = ("applied", "legit", "duplicate", "unknown", "too_old")


# Slots, not frozen: a frozen dataclass's __init__ costs about 5 us, every batch.
@dataclass(slots=True)
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
    """A batch's writes: its keys, the values read (each write must still find its own)
    and the new values, as byte columns (one buffer each: the hot path makes no object
    per key) and, where a store needs them, as lists."""

    keys: list[bytes]
    read: ByteColumn
    new: ByteColumn  # absent: the key is unchanged
    redo_for: Callable[[int], Redo]  # the redo of key i, built only on a conflict
    duplicates: list[int] = field(default_factory=list)  # events counted already
    replays: list[int] = field(default_factory=list)  # read again, on a later state

    @classmethod
    def of_lists(cls, keys: list[bytes], reads: list[bytes | None],
                 values: list[bytes | None], redo_for: Callable[[int], Redo],
                 ) -> PendingUpdate:
        return cls(keys, ByteColumn.of(reads), ByteColumn.of(values), redo_for)

    @functools.cached_property
    def reads(self) -> list[bytes | None]:
        return self.read.tolist()

    @functools.cached_property
    def values(self) -> list[bytes | None]:
        """The new values, None where the key is unchanged."""
        return self.new.tolist()

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
        self._customer_prefix = self._prefix + b":c:"
        self._terminal_prefix = self._prefix + b":t:"
        kernels.compile_kernels()  # before any batch: never on a live one
        resp_pack.compile_packer()

    def customer_key(self, customer_id: str) -> bytes:
        return customer_key(self._prefix, customer_id)

    def terminal_key(self, terminal_id: str) -> bytes:
        return terminal_key(self._prefix, terminal_id)

    # -- transactions -----------------------------------------------------------------

    def fetch(self, batch: TransactionBatch) -> tuple[np.ndarray, PendingUpdate]:
        customers, c_index = _distinct(batch.customer_ids)
        terminals, t_index = _distinct(batch.terminal_ids)
        keys = [*map(self._customer_prefix.__add__, map(str.encode, customers)),
                *map(self._terminal_prefix.__add__, map(str.encode, terminals))]
        read = ByteColumn.of(self._read(keys))
        n_customers = len(customers)
        # Fresh arrays of fixed types: the kernel is compiled for exactly these (a read-only
        # column from pandas would be another type, and compiling on a live batch is refused).
        ts, partitions, offsets = np.array(
            [batch.timestamps_ms, batch.partitions, batch.offsets], np.int64).reshape(3, -1)
        matrix, out, new_lengths, unreadable, flags, unusual = kernels.batch_features(
            read.data, read.lengths, n_customers, c_index, t_index, ts,
            np.array(batch.amounts, np.float64), partitions, offsets,
            *_id_column(batch.transaction_ids))
        duplicates: list[int] = []
        replays: list[int] = []
        if unusual:  # rare: unreadable values (read as absent, counted), flagged events
            for i in np.flatnonzero(unreadable).tolist():
                self._unreadable[self._kind(i < n_customers)] += 1
            duplicates = np.flatnonzero(flags & kernels.DUPLICATE_EVENT).tolist()
            replays = np.flatnonzero(flags & kernels.STALE_EVENT).tolist()
            self._duplicates += len(duplicates)
        redo_for = partial(_redo, batch, c_index, t_index, n_customers, frozenset(duplicates))
        return matrix, PendingUpdate(keys, read, ByteColumn.of_array(out, new_lengths),
                                     redo_for, duplicates, replays)

    def update(self, pending: PendingUpdate) -> int:
        """Store the new states; returns how many keys needed a conflict retry."""
        self.begin_update(pending)
        return self.complete_update()

    def begin_update(self, pending: PendingUpdate) -> None:
        """Send the new states and return at once. The write is completed (its conflicts
        retried) by the next read of this store, in the same round trip as that read, or
        by ``complete_update``."""
        self.complete_update()
        store = self._store
        if isinstance(store, RedisStateStore) and store.guarded_set:
            packed, changed = resp_pack.guarded_sets(ByteColumn.of_present(pending.keys),
                                                     pending.read, pending.new, self._ttl_ms)
            sent = store.send_packed_sets(packed, len(changed))
        else:
            values = pending.values
            changed = [i for i, value in enumerate(values) if value is not None]
            reads = pending.reads
            sent = store.send_compare_and_set_many(
                [pending.keys[i] for i in changed], [reads[i] for i in changed],
                # misc: mypy mis-infers the element type of the changed values
                [values[i] for i in changed], self._ttl_ms)  # type: ignore[misc]
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

    def _kind(self, customer: bool) -> str:
        """The label unreadable values are counted under: the key prefix of their kind."""
        return f"{self._prefix.decode('utf-8', 'replace')}:{'c' if customer else 't'}"

    def _readable(self, keys: list[bytes], read: list[bytes | None],
                  n_customers: int) -> list[bytes | None]:
        """``read`` with every value that does not parse as its kind's state replaced by
        None (absent), each counted by its key's prefix."""
        parsed: list[bytes | None] = []
        for i, raw in enumerate(read):
            try:
                (customer_state if i < n_customers else terminal_state).decode(raw)
            except UNREADABLE:
                self._unreadable[self._kind(i < n_customers)] += 1
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
            self._unreadable[self._kind(customer)] += 1
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
        frauds_at = frauds.tolist()
        terminals, _ = _distinct([labels.terminal_ids[i] for i in frauds_at])
        keys = [self.terminal_key(t) for t in terminals]
        read = self._readable(keys, self._read(keys), 0)
        redos, values = [], []
        for k, terminal in enumerate(terminals):
            events = [i for i in frauds_at if labels.terminal_ids[i] == terminal]
            redo = _label_redo(labels, events, outcomes)
            value = redo(read[k])
            redos.append(redo)
            values.append(value if any(outcomes[i] == "applied" for i in events) else None)
        self.update(PendingUpdate.of_lists(keys, read, values, redos.__getitem__))
        return collections.Counter(outcomes)


def customer_key(prefix: bytes, customer_id: str) -> bytes:
    return prefix + b":c:" + customer_id.encode("utf-8")


def terminal_key(prefix: bytes, terminal_id: str) -> bytes:
    return prefix + b":t:" + terminal_id.encode("utf-8")


def _distinct(ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct ids in first-seen order, and each id's position among them."""
    positions = dict(zip(dict.fromkeys(ids), itertools.count()))
    return list(positions), np.fromiter(map(positions.__getitem__, ids), np.int64, len(ids))


def _id_column(transaction_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The batch's transaction ids as UTF-8 bytes back to back and their lengths (no ids:
    nothing is recognised as a duplicate)."""
    if not transaction_ids:
        return kernels.NO_IDS
    joined = "".join(transaction_ids)
    data = joined.encode()
    if len(data) == len(joined):  # ASCII: as many bytes as characters
        lengths = np.fromiter(map(len, transaction_ids), np.int64, len(transaction_ids))
    else:
        encoded = [tx.encode() for tx in transaction_ids]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    return np.frombuffer(data, np.uint8), lengths


def _redo(batch: TransactionBatch, c_index: np.ndarray, t_index: np.ndarray,
          n_customers: int, duplicates: frozenset[int], key: int) -> Redo:
    """Key ``key``'s redo on a fresh value after a conflict: its events but the
    duplicates applied again (replays skipped), a customer's recent digests kept."""
    if key < n_customers:
        events = [e for e in np.flatnonzero(c_index == key).tolist() if e not in duplicates]
        ids = ([recent_ids.digest(batch.transaction_ids[e]) for e in events]
               if batch.transaction_ids else [])
        return recent_ids.remembering(_customer_redo(batch, events), ids)
    events = [e for e in np.flatnonzero(t_index == key - n_customers).tolist()
              if e not in duplicates]
    return _terminal_redo(batch, events)


def _customer_redo(batch: TransactionBatch, events: list[int]) -> Redo:
    def redo(raw: bytes | None) -> bytes:  # the state with its marks (recent_ids.split)
        state = customer_state.decode_guarded(raw)
        for event in events:
            partition, offset = int(batch.partitions[event]), int(batch.offsets[event])
            if not state.has_applied(partition, offset):
                ts = int(batch.timestamps_ms[event])
                state.add(ts // DAY_MS, ts, int(to_cents(batch.amounts[event])), partition,
                          offset)
        return customer_state.encode(state)
    return redo


def _terminal_redo(batch: TransactionBatch, events: list[int]) -> Redo:
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
    """The sequential definition for one event: (counts, cents sums over TOTAL_WINDOWS,
    gap, applied)."""
    day = ts // DAY_MS
    if state.has_applied(partition, offset):
        exact = partition == state.partition and offset == state.offset
        gap = state.prev_gap if exact else ts - state.last_ts
        extra, applied = (0, 0), False
    else:
        stored = state.add(day, ts, cents, partition, offset)
        gap = state.prev_gap
        extra, applied = ((0, 0) if stored else (1, cents)), True
    counts, sums = [], []
    for window in TOTAL_WINDOWS:
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
    shape = (n, len(TOTAL_WINDOWS))
    counts, sums = np.empty(shape, np.int64), np.empty(shape, np.int64)
    t_shape = (n, len(WINDOWS))
    t_counts, t_frauds = np.empty(t_shape, np.int64), np.empty(t_shape, np.int64)
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


def _calendar_columns(batch: TransactionBatch) -> np.ndarray:
    matrix = np.empty((len(batch), N_FEATURES), dtype=np.float64)
    matrix[:, COL_AMOUNT] = batch.amounts
    weekend, night = calendar_flags(batch.timestamps_ms)
    matrix[:, COL_WEEKEND] = weekend
    matrix[:, COL_NIGHT] = night
    return matrix


def _window_columns(matrix: np.ndarray, counts: np.ndarray, sums: np.ndarray,
                    gaps: np.ndarray, t_counts: np.ndarray, t_frauds: np.ndarray) -> None:
    """Every column but the calendar's and the amount, from the customer's totals over
    TOTAL_WINDOWS (``counts``, ``sums``: a column per window) and the terminal's over
    WINDOWS."""
    c = {window: counts[:, i] for i, window in enumerate(TOTAL_WINDOWS)}
    s = {window: sums[:, i] for i, window in enumerate(TOTAL_WINDOWS)}
    for w, window in enumerate(WINDOWS):
        matrix[:, COL_COUNT[window]] = c[window]
        matrix[:, COL_AVG[window]] = average_amount(s[window], c[window])
        matrix[:, COL_TERMINAL_COUNT[window]] = t_counts[:, w]
        matrix[:, COL_TERMINAL_RISK[window]] = risk(t_frauds[:, w], t_counts[:, w])
    longest = max(WINDOWS)
    matrix[:, COL_GAP] = gap_seconds(gaps)
    matrix[:, COL_AMOUNT_RATIO] = amount_over_mean(matrix[:, COL_AMOUNT],
                                                   matrix[:, COL_AVG[longest]])
    matrix[:, COL_AMOUNT_OVER_1D] = amount_over_mean(matrix[:, COL_AMOUNT], matrix[:, COL_AVG[1]])
    matrix[:, COL_MEAN_1D_OVER_30D] = amount_over_mean(matrix[:, COL_AVG[1]],
                                                       matrix[:, COL_AVG[longest]])
    for (recent, before), column in COL_MEAN_OVER_BEFORE.items():
        matrix[:, column] = mean_over_before(matrix[:, COL_AVG[recent]], c[longest],
                                             s[longest], c[before], s[before])


FEATURES_DEGRADED = "features"  # a decision's ``degraded`` entry on default features
# ... for a replayed event scored on a state that already counts a later event of its
# customer (PendingUpdate.replays): not the features it was first decided on
REPLAY = "replay"


def default_matrix(batch: TransactionBatch) -> np.ndarray:
    """Features from the event alone, as for a first transaction at a new terminal: used
    when the state cannot be read (degraded mode)."""
    n = len(batch)
    matrix = _calendar_columns(batch)
    ones = np.ones((n, len(TOTAL_WINDOWS)), dtype=np.int64)
    cents = np.repeat(to_cents(batch.amounts)[:, None], len(TOTAL_WINDOWS), axis=1)
    zeros = np.zeros((n, len(WINDOWS)), dtype=np.int64)
    _window_columns(matrix, ones, cents, np.full(n, GAP_CAP_MS, dtype=np.int64), zeros, zeros)
    return matrix
