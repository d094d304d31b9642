"""The compiled hot path: a whole batch's stored states, events and features in one call.

``batch_features`` decodes the packed customer and terminal values of a batch (one byte
buffer, customers with their recent transaction-id digests and partition marks), finds
the batch's duplicate transaction ids (``features.recent_ids``), applies every other
event in arrival order (replays skipped, exactly as ``features.online.apply_batch``, the
sequential definition it is tested against for exact equality), writes the feature
matrix and encodes every changed state, digests included, into one output buffer.
Nothing in it is done per key in Python. It is compiled by Numba once per
process (``compile_kernels``, before any batch), and cached where ``features.jit`` says.

The byte layouts are those of ``customer_state`` and ``terminal_state``; their offsets
are read from those modules, so a layout change shows up here.
"""

from __future__ import annotations

import numba
import numpy as np

from fraudstream.features.byte_copy import copy_bytes
from fraudstream.features.customer_state import (
    NO_GAP,
    NO_PARTITION,
    RECENT_IDS_BYTES,
    STATE_BYTES,
    STATE_DTYPE,
)
from fraudstream.features.customer_state import VERSION as CUSTOMER_VERSION
from fraudstream.features.definitions import (
    CENTS_MAX,
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
    COUNT_MAX,
    DAY_MS,
    GAP_CAP_MS,
    HOUR_MS,
    LABEL_DELAY_DAYS,
    MIN_MEAN_AMOUNT,
    N_FEATURES,
    NIGHT_LAST_HOUR,
    RING_DAYS,
    TERMINAL_RING_DAYS,
    TOTAL_WINDOWS,
    WINDOWS,
)
from fraudstream.features.jit import CACHE, warm_up
from fraudstream.features.recent_ids import (
    DIGEST_BYTES,
    EMPTY_DIGEST_STANDIN,
    FNV_OFFSET,
    FNV_PRIME,
)
from fraudstream.features.terminal_state import COUNT_MAX as TERMINAL_COUNT_MAX
from fraudstream.features.terminal_state import VERSION as TERMINAL_VERSION

assert STATE_DTYPE.fields is not None  # a structured dtype
_FIELD = {name: int(field[1]) for name, field in STATE_DTYPE.fields.items()}
C_PARTITION, C_OFFSET, C_LAST_DAY = _FIELD["partition"], _FIELD["offset"], _FIELD["last_day"]
C_LAST_TS, C_PREV_GAP = _FIELD["last_ts"], _FIELD["prev_gap"]
C_COUNTS, C_CENTS = _FIELD["counts"], _FIELD["cents"]
T_HEADER = 11  # version u1, last_day i4, marks u2, fraud ids u4 (terminal_state._HEADER)
T_PREFIX = T_HEADER + 2 * 4 * TERMINAL_RING_DAYS  # header and the two u4 rings
MARK_BYTES, FRAUD_BYTES = 10, 12  # (u2 partition, i8 offset), (i4 day, u8 id)
NW = len(WINDOWS)
TERMINAL_COUNT_COLS = tuple(COL_TERMINAL_COUNT[w] for w in WINDOWS)
TERMINAL_RISK_COLS = tuple(COL_TERMINAL_RISK[w] for w in WINDOWS)
AVG_LONGEST = COL_AVG[max(WINDOWS)]
AVG_1D = COL_AVG[1]
# The customer's totals over TOTAL_WINDOWS: those of WINDOWS have count and mean columns
# (-1: none), the others only split the longest window (definitions.mean_over_before).
NT = len(TOTAL_WINDOWS)
T_LONGEST = TOTAL_WINDOWS.index(max(WINDOWS))
TOTAL_COUNT_COLS = tuple(COL_COUNT.get(w, -1) for w in TOTAL_WINDOWS)
TOTAL_AVG_COLS = tuple(COL_AVG.get(w, -1) for w in TOTAL_WINDOWS)
NB = len(COL_MEAN_OVER_BEFORE)
BEFORE_COLS = tuple(COL_MEAN_OVER_BEFORE.values())
BEFORE_RECENT_AVG_COLS = tuple(COL_AVG[recent] for recent, _ in COL_MEAN_OVER_BEFORE)
BEFORE_T = tuple(TOTAL_WINDOWS.index(before) for _, before in COL_MEAN_OVER_BEFORE)
RING, TRING = RING_DAYS, TERMINAL_RING_DAYS

njit = numba.njit(cache=CACHE, nogil=True)
# Small helpers are inlined where they are called: numba compiles each njit function on
# its own, and a call per byte or field cost ten times the work (copies, fields).
inline = numba.njit(cache=CACHE, nogil=True, inline="always")


# -- little-endian fields of a byte buffer ---------------------------------------------

@inline
def _get(b: np.ndarray, p: int, size: int) -> np.uint64:
    v = np.uint64(0)
    for i in range(size):
        v |= np.uint64(b[p + i]) << np.uint64(8 * i)
    return v


@inline
def _u(b: np.ndarray, p: int, size: int) -> np.int64:
    return np.int64(_get(b, p, size))


@inline
def _i4(b: np.ndarray, p: int) -> np.int64:
    v = np.int64(_get(b, p, 4))
    return v - 2**32 if v >= 2**31 else v


@inline
def _i8(b: np.ndarray, p: int) -> np.int64:
    return np.int64(_get(b, p, 8))


@inline
def _put(b: np.ndarray, p: int, size: int, value: int) -> None:
    v = np.uint64(value)  # two's complement for negative values
    for i in range(size):
        b[p + i] = np.uint8((v >> np.uint64(8 * i)) & np.uint64(0xFF))


# -- a customer's marks: (partition, offset) pairs sorted by partition, from ``first`` --

@njit
def _read_marks(blob: np.ndarray, at: np.ndarray, counts: np.ndarray, room_for: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(where each entity's marks start, partitions, offsets): entity e's ``counts[e]``
    marks read from ``blob[at[e]:]``, in a region with room for ``room_for[e]`` more."""
    n = at.shape[0]
    first = np.empty(n, np.int64)
    room = 0
    for e in range(n):
        first[e] = room
        room += counts[e] + room_for[e]
    parts = np.empty(room, np.int64)
    offs = np.empty(room, np.int64)
    for e in range(n):
        for m in range(counts[e]):
            parts[first[e] + m] = _u(blob, at[e] + MARK_BYTES * m, 2)
            offs[first[e] + m] = _i8(blob, at[e] + MARK_BYTES * m + 2)
    return first, parts, offs


@inline
def _mark_of(parts: np.ndarray, offs: np.ndarray, first: int, n: int, part: int) -> int:
    """The offset counted on ``part``, -1 when none is."""
    for m in range(first, first + n):
        if parts[m] == part:
            return int(offs[m])
    return -1


@inline
def _put_mark(parts: np.ndarray, offs: np.ndarray, first: int, n: int, part: int,
              off: int) -> int:
    """Raise (or insert) ``part``'s mark to ``off``; returns the number of marks."""
    m = first
    while m < first + n and parts[m] < part:
        m += 1
    if m < first + n and parts[m] == part:
        offs[m] = max(offs[m], off)
        return n
    for q in range(first + n, m, -1):
        parts[q], offs[q] = parts[q - 1], offs[q - 1]
    parts[m], offs[m] = part, off
    return n + 1


@inline
def _drop_mark(parts: np.ndarray, offs: np.ndarray, first: int, n: int, part: int) -> int:
    """Remove ``part``'s mark, if any; returns the number of marks."""
    for m in range(first, first + n):
        if parts[m] == part:
            for q in range(m, first + n - 1):
                parts[q], offs[q] = parts[q + 1], offs[q + 1]
            return n - 1
    return n


# -- transaction-id digests (features.recent_ids.digest_value) -----------------------

STATE_AND_RECENT = STATE_BYTES + RECENT_IDS_BYTES
DIGEST_MASK = np.uint64((1 << (8 * DIGEST_BYTES)) - 1)
DUPLICATE_EVENT, STALE_EVENT = 2, 1  # bits of an event's flags


@njit
def _digests(id_blob: np.ndarray, id_lengths: np.ndarray) -> np.ndarray:
    """Each id's 40-bit digest: FNV-1a over its bytes, folded; 0 (the empty slot) never."""
    n = id_lengths.shape[0]
    out = np.empty(n, np.uint64)
    at = 0
    for i in range(n):
        h = np.uint64(FNV_OFFSET)
        for q in range(at, at + id_lengths[i]):
            h = (h ^ np.uint64(id_blob[q])) * np.uint64(FNV_PRIME)
        at += id_lengths[i]
        folded = (h ^ (h >> np.uint64(40))) & DIGEST_MASK
        out[i] = folded if folded != 0 else np.uint64(EMPTY_DIGEST_STANDIN)
    return out


@inline
def _stored_guard_covers(part: int, off: int, c_part: int, c_off: int, parts: np.ndarray,
                         offs: np.ndarray, first: int, n: int) -> bool:
    """Does a stored customer guard say this record was counted already?"""
    if part == c_part:
        return off <= c_off
    return off <= _mark_of(parts, offs, first, n, part)


@njit
def _duplicates(digests: np.ndarray, c_index: np.ndarray, partitions: np.ndarray,
                offsets: np.ndarray, recent0: np.ndarray, recent1: np.ndarray,
                readable: np.ndarray, c_part: np.ndarray, c_off: np.ndarray,
                mark_at: np.ndarray, mark_part: np.ndarray, mark_off: np.ndarray,
                marks: np.ndarray, n_customers: int) -> np.ndarray:
    """recent_ids.find_duplicates on the stored (not yet updated) customer states: an
    event whose digest its customer holds, unless the guard calls it a replay; or whose
    (customer, digest) came first in this batch at another record."""
    n = digests.shape[0]
    dup = np.zeros(n, np.bool_)
    seen = np.zeros(n, np.bool_)  # held by the stored digests (and not a replay)
    previous = np.empty(n, np.int64)  # the customer's previous event in the batch
    last = np.full(n_customers, -1, np.int64)
    for i in range(n):
        k, d = c_index[i], digests[i]
        previous[i] = last[k]
        last[k] = i
        part, off = partitions[i], offsets[i]
        if (d == recent0[k] or d == recent1[k]) and not (readable[k] and _stored_guard_covers(
                part, off, c_part[k], c_off[k], mark_part, mark_off, mark_at[k], marks[k])):
            dup[i] = seen[i] = True
            continue
        first = -1  # the first event of the batch with this (customer, digest), not seen
        j = previous[i]
        while j >= 0:
            if digests[j] == d and not seen[j]:
                first = j
            j = previous[j]
        if first >= 0 and (partitions[first] != part or offsets[first] != off):
            dup[i] = True
    return dup


# -- the batch ---------------------------------------------------------------------------

@njit
def batch_features(blob: np.ndarray, lengths: np.ndarray, n_customers: int,
                   c_index: np.ndarray, t_index: np.ndarray, ts: np.ndarray,
                   amounts: np.ndarray, partitions: np.ndarray, offsets: np.ndarray,
                   id_blob: np.ndarray, id_lengths: np.ndarray,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """(feature matrix, new values, their lengths, unreadable keys, event flags, whether
    any key was unreadable or any event flagged: most batches need not look).

    ``blob`` holds the stored values back to back, customers first; ``lengths[k]`` is
    value k's size, -1 when absent. The new values are back to back in ``out`` in the
    same order, ``new_lengths[k]`` -1 when that state did not change. A value that is not
    a state of its kind is flagged in ``unreadable`` and read as absent. The events'
    transaction ids are ``id_blob`` cut by ``id_lengths`` (none at all: no duplicate is
    recognised, stored digests are kept).

    An event's flags: DUPLICATE_EVENT, its id was seen already (recent_ids): it is
    scored as if new, on the state before it, and counted nowhere; STALE_EVENT, a replay
    whose customer state already counts a later event of that customer, so its features
    are not the ones it had when first counted (a replay of the last counted event is
    exact: its gap is kept in the state)."""
    n, n_keys = ts.shape[0], lengths.shape[0]
    n_terminals = n_keys - n_customers
    with_ids = id_lengths.shape[0] == n and n > 0
    starts = np.empty(n_keys, np.int64)
    at = 0
    for k in range(n_keys):
        starts[k] = at
        at += max(lengths[k], 0)
    unreadable = np.zeros(n_keys, np.bool_)

    # customers as columns, their recent digests (0: an empty slot), their other
    # partitions' marks in a region per customer with room for one new mark per event
    events_of_customer = np.zeros(n_customers, np.int64)
    for i in range(n):
        events_of_customer[c_index[i]] += 1
    c_marks = np.zeros(n_customers, np.int64)
    c_part = np.full(n_customers, NO_PARTITION, np.int64)
    c_off = np.full(n_customers, -1, np.int64)
    c_day = np.zeros(n_customers, np.int64)
    c_ts = np.zeros(n_customers, np.int64)
    c_gap = np.full(n_customers, NO_GAP, np.int64)
    c_counts = np.zeros((n_customers, RING), np.int64)
    c_cents = np.zeros((n_customers, RING), np.int64)
    recent0 = np.zeros(n_customers, np.uint64)
    recent1 = np.zeros(n_customers, np.uint64)
    c_recent = np.zeros(n_customers, np.bool_)  # its value carries the digests' place
    c_marks_from = np.zeros(n_customers, np.int64)
    for k in range(n_customers):
        size = lengths[k]
        if size < 0:
            continue
        p = starts[k]
        if size == STATE_BYTES:
            c_marks_from[k] = p + STATE_BYTES
        elif size >= STATE_AND_RECENT and (size - STATE_AND_RECENT) % MARK_BYTES == 0:
            c_recent[k] = True
            recent0[k] = _get(blob, p + STATE_BYTES, DIGEST_BYTES)
            recent1[k] = _get(blob, p + STATE_BYTES + DIGEST_BYTES, DIGEST_BYTES)
            c_marks[k] = (size - STATE_AND_RECENT) // MARK_BYTES
            c_marks_from[k] = p + STATE_AND_RECENT
        else:
            unreadable[k] = True
        if unreadable[k] or blob[p] != CUSTOMER_VERSION:
            unreadable[k] = True
            c_marks[k], c_recent[k], recent0[k], recent1[k] = 0, False, 0, 0
            continue
        c_part[k] = _u(blob, p + C_PARTITION, 2)
        c_off[k] = _i8(blob, p + C_OFFSET)
        c_day[k] = _i4(blob, p + C_LAST_DAY)
        c_ts[k] = _i8(blob, p + C_LAST_TS)
        c_gap[k] = _u(blob, p + C_PREV_GAP, 4)
        for s in range(RING):
            c_counts[k, s] = blob[p + C_COUNTS + s]
            c_cents[k, s] = _u(blob, p + C_CENTS + 4 * s, 4)

    c_mark_at, c_mark_part, c_mark_off = _read_marks(blob, c_marks_from, c_marks,
                                                     events_of_customer)
    flags = np.zeros(n, np.uint8)
    digests = np.zeros(n, np.uint64)
    if with_ids:
        digests = _digests(id_blob, id_lengths)
        readable = np.zeros(n_customers, np.bool_)
        for k in range(n_customers):
            readable[k] = lengths[k] >= 0 and not unreadable[k]
        dup = _duplicates(digests, c_index, partitions, offsets, recent0, recent1,
                          readable, c_part, c_off, c_mark_at, c_mark_part, c_mark_off,
                          c_marks, n_customers)
        for i in range(n):
            if dup[i]:
                flags[i] = DUPLICATE_EVENT

    # terminals: rings as columns, partition marks in a region per terminal with room
    # for one new mark per event of the batch, fraud ids left in the blob
    events_of = np.zeros(n_terminals, np.int64)
    for i in range(n):
        events_of[t_index[i]] += 1
    t_day = np.zeros(n_terminals, np.int64)
    t_counts = np.zeros((n_terminals, TRING), np.int64)
    t_frauds = np.zeros((n_terminals, TRING), np.int64)
    n_marks = np.zeros(n_terminals, np.int64)
    n_ids = np.zeros(n_terminals, np.int64)
    ids_from = np.zeros(n_terminals, np.int64)  # where the stored fraud ids start
    for j in range(n_terminals):
        k = n_customers + j
        size = lengths[k]
        if size < 0:
            continue
        p = starts[k]
        if size < T_PREFIX or blob[p] != TERMINAL_VERSION:
            unreadable[k] = True
            continue
        marks, ids = _u(blob, p + 5, 2), _u(blob, p + 7, 4)
        if size != T_PREFIX + marks * MARK_BYTES + ids * FRAUD_BYTES:
            unreadable[k] = True
            continue
        t_day[j] = _i4(blob, p + 1)
        for s in range(TRING):
            t_counts[j, s] = _u(blob, p + T_HEADER + 4 * s, 4)
            t_frauds[j, s] = _u(blob, p + T_HEADER + 4 * (TRING + s), 4)
        n_marks[j], n_ids[j] = marks, ids
        ids_from[j] = p + T_PREFIX + marks * MARK_BYTES
    mark_at, mark_part, mark_off = _read_marks(blob, starts[n_customers:] + T_PREFIX, n_marks,
                                               events_of)
    rolled = np.zeros(n_terminals, np.bool_)

    matrix = np.empty((n, N_FEATURES), np.float64)
    w_count = np.empty(NT, np.int64)  # the customer's totals over TOTAL_WINDOWS
    w_total = np.empty(NT, np.int64)
    c_changed = np.zeros(n_customers, np.bool_)
    t_changed = np.zeros(n_terminals, np.bool_)
    # what a duplicate's states were before it: put back once it is scored
    save_c = np.zeros(6, np.int64)
    save_ring = np.zeros((2, RING), np.int64)
    save_t_ring = np.zeros((2, TRING), np.int64)
    region = 1  # the most marks an entity can hold in the batch: its own and one per event
    for k in range(n_customers):
        region = max(region, c_marks[k] + events_of_customer[k] + 1)
    for j in range(n_terminals):
        region = max(region, n_marks[j] + events_of[j] + 1)
    save_marks = np.zeros((2, region), np.int64)
    save_t_marks = np.zeros((2, region), np.int64)
    save_c_changed = save_t_rolled = save_t_changed = False
    save_t_day = save_t_n = 0
    for i in range(n):
        t, part, off, amount = ts[i], partitions[i], offsets[i], amounts[i]
        k, j = c_index[i], t_index[i]
        duplicate = flags[i] == DUPLICATE_EVENT
        if duplicate:  # scored as if new, then both states are put back as they were
            save_c[0], save_c[1], save_c[2] = c_part[k], c_off[k], c_day[k]
            save_c[3], save_c[4], save_c[5] = c_ts[k], c_gap[k], c_marks[k]
            save_c_changed = c_changed[k]
            for s in range(RING):
                save_ring[0, s], save_ring[1, s] = c_counts[k, s], c_cents[k, s]
            for m in range(c_marks[k] + 1):
                save_marks[0, m] = c_mark_part[c_mark_at[k] + m]
                save_marks[1, m] = c_mark_off[c_mark_at[k] + m]
            save_t_day, save_t_n = t_day[j], n_marks[j]
            save_t_rolled, save_t_changed = rolled[j], t_changed[j]
            for s in range(TRING):
                save_t_ring[0, s], save_t_ring[1, s] = t_counts[j, s], t_frauds[j, s]
            for m in range(n_marks[j] + 1):
                save_t_marks[0, m] = mark_part[mark_at[j] + m]
                save_t_marks[1, m] = mark_off[mark_at[j] + m]
        day = t // DAY_MS
        cents = np.int64(np.rint(amount * 100.0))
        matrix[i, COL_AMOUNT] = amount
        matrix[i, COL_WEEKEND] = 1.0 if (day + 3) % 7 >= 5 else 0.0
        matrix[i, COL_NIGHT] = 1.0 if (t - day * DAY_MS) // HOUR_MS <= NIGHT_LAST_HOUR else 0.0

        # the customer: CustomerState.add and window_totals, online._customer_event
        extra_count, extra_cents = 0, np.int64(0)
        first = c_mark_at[k]
        if part == c_part[k]:
            replay = off <= c_off[k]
        else:
            replay = off <= _mark_of(c_mark_part, c_mark_off, first, c_marks[k], part)
        if replay:  # counted already
            exact = part == c_part[k] and off == c_off[k]
            gap = c_gap[k] if exact else t - c_ts[k]
            if not exact:
                flags[i] |= STALE_EVENT
        else:
            if c_part[k] == NO_PARTITION and c_off[k] < 0:
                c_day[k] = day
                gap = NO_GAP
            else:
                gap = min(max(t - c_ts[k], 0), GAP_CAP_MS)
                if day > c_day[k]:
                    for d in range(max(c_day[k] + 1, day - RING + 1), day + 1):
                        c_counts[k, d % RING] = 0
                        c_cents[k, d % RING] = 0
                    c_day[k] = day
            if day > c_day[k] - RING:
                s = day % RING
                c_counts[k, s] = min(c_counts[k, s] + 1, COUNT_MAX)
                c_cents[k, s] = min(c_cents[k, s] + cents, CENTS_MAX)
            else:  # too old for the ring: it still counts in its own windows
                extra_count, extra_cents = 1, cents
            if part != c_part[k] and c_part[k] != NO_PARTITION:  # keep its guard
                c_marks[k] = _put_mark(c_mark_part, c_mark_off, first, c_marks[k], c_part[k],
                                       c_off[k])
            c_marks[k] = _drop_mark(c_mark_part, c_mark_off, first, c_marks[k], part)
            c_gap[k], c_ts[k], c_part[k], c_off[k] = gap, t, part, off
            c_changed[k] = True
        new = c_part[k] == NO_PARTITION and c_off[k] < 0
        for w in range(NT):
            count, total = extra_count, extra_cents
            if not new:
                for d in range(max(day - TOTAL_WINDOWS[w] + 1, c_day[k] - RING + 1),
                               min(day, c_day[k]) + 1):
                    count += c_counts[k, d % RING]
                    total += c_cents[k, d % RING]
            w_count[w], w_total[w] = count, total
            if TOTAL_COUNT_COLS[w] >= 0:
                matrix[i, TOTAL_COUNT_COLS[w]] = count
                matrix[i, TOTAL_AVG_COLS[w]] = (np.float64(total) / np.float64(max(count, 1))
                                                / 100.0)
        if gap == NO_GAP:
            gap = GAP_CAP_MS
        matrix[i, COL_GAP] = np.float64(min(max(gap, 0), GAP_CAP_MS)) / 1000.0
        matrix[i, COL_AMOUNT_RATIO] = amount / max(matrix[i, AVG_LONGEST], MIN_MEAN_AMOUNT)
        if with_ids and not duplicate:  # recent_ids.remembered
            d = digests[i]
            if d != recent0[k] and d != recent1[k]:
                recent1[k], recent0[k] = recent0[k], d
        # the amounts against the customer's own history (definitions.mean_over_before)
        matrix[i, COL_AMOUNT_OVER_1D] = amount / max(matrix[i, AVG_1D], MIN_MEAN_AMOUNT)
        matrix[i, COL_MEAN_1D_OVER_30D] = matrix[i, AVG_1D] / max(matrix[i, AVG_LONGEST],
                                                                  MIN_MEAN_AMOUNT)
        for b in range(NB):
            older = w_count[T_LONGEST] - w_count[BEFORE_T[b]]
            if older > 0:
                older_mean = (np.float64(w_total[T_LONGEST] - w_total[BEFORE_T[b]])
                              / np.float64(older) / 100.0)
                matrix[i, BEFORE_COLS[b]] = (matrix[i, BEFORE_RECENT_AVG_COLS[b]]
                                             / max(older_mean, MIN_MEAN_AMOUNT))
            else:
                matrix[i, BEFORE_COLS[b]] = 0.0

        # the terminal: TerminalState.window_totals and add_transaction
        new = n_marks[j] == 0
        if new:
            for s in range(TRING):
                if t_counts[j, s] != 0:
                    new = False
                    break
        last = day - LABEL_DELAY_DAYS
        for w in range(NW):
            count, frauds = 0, 0
            if not new:
                for d in range(max(last - WINDOWS[w] + 1, t_day[j] - TRING + 1),
                               min(last, t_day[j]) + 1):
                    count += t_counts[j, d % TRING]
                    frauds += t_frauds[j, d % TRING]
            matrix[i, TERMINAL_COUNT_COLS[w]] = count
            matrix[i, TERMINAL_RISK_COLS[w]] = (np.float64(frauds) / np.float64(count)
                                                if count > 0 else 0.0)
        first, end = mark_at[j], mark_at[j] + n_marks[j]
        m = first
        while m < end and mark_part[m] < part:
            m += 1
        if not (m < end and mark_part[m] == part and off <= mark_off[m]):  # not a replay
            if new:
                t_day[j] = day
            elif day > t_day[j]:
                for d in range(max(t_day[j] + 1, day - TRING + 1), day + 1):
                    t_counts[j, d % TRING] = 0
                    t_frauds[j, d % TRING] = 0
                t_day[j] = day
                rolled[j] = True
            if m < end and mark_part[m] == part:
                mark_off[m] = max(off, mark_off[m])
            else:  # a new partition: keep the marks sorted, as terminal_state.encode does
                for q in range(end, m, -1):
                    mark_part[q], mark_off[q] = mark_part[q - 1], mark_off[q - 1]
                mark_part[m], mark_off[m] = part, off
                n_marks[j] += 1
            if t_day[j] - TRING < day <= t_day[j]:
                s = day % TRING
                t_counts[j, s] = min(t_counts[j, s] + 1, TERMINAL_COUNT_MAX)
            t_changed[j] = True

        if duplicate:
            c_part[k], c_off[k], c_day[k] = save_c[0], save_c[1], save_c[2]
            c_ts[k], c_gap[k], c_marks[k] = save_c[3], save_c[4], save_c[5]
            c_changed[k] = save_c_changed
            for s in range(RING):
                c_counts[k, s], c_cents[k, s] = save_ring[0, s], save_ring[1, s]
            for m in range(c_marks[k] + 1):
                c_mark_part[c_mark_at[k] + m] = save_marks[0, m]
                c_mark_off[c_mark_at[k] + m] = save_marks[1, m]
            t_day[j], n_marks[j] = save_t_day, save_t_n
            rolled[j], t_changed[j] = save_t_rolled, save_t_changed
            for s in range(TRING):
                t_counts[j, s], t_frauds[j, s] = save_t_ring[0, s], save_t_ring[1, s]
            for m in range(n_marks[j] + 1):
                mark_part[mark_at[j] + m] = save_t_marks[0, m]
                mark_off[mark_at[j] + m] = save_t_marks[1, m]
            flags[i] = DUPLICATE_EVENT

    # encode the changed states
    kept = np.zeros(n_terminals, np.int64)
    size = 0
    for k in range(n_customers):
        if c_changed[k]:
            c_recent[k] = c_recent[k] or with_ids or c_marks[k] > 0
            size += STATE_BYTES + MARK_BYTES * c_marks[k]
            if c_recent[k]:
                size += RECENT_IDS_BYTES
    for j in range(n_terminals):
        if not t_changed[j]:
            continue
        for q in range(n_ids[j]):
            if not rolled[j] or _i4(blob, ids_from[j] + FRAUD_BYTES * q) > t_day[j] - TRING:
                kept[j] += 1
        size += T_PREFIX + MARK_BYTES * n_marks[j] + FRAUD_BYTES * kept[j]
    out = np.empty(size, np.uint8)
    new_lengths = np.full(n_keys, -1, np.int64)
    at = 0
    for k in range(n_customers):
        if not c_changed[k]:
            continue
        began = at
        out[at] = CUSTOMER_VERSION
        _put(out, at + C_PARTITION, 2, c_part[k])
        _put(out, at + C_OFFSET, 8, c_off[k])
        _put(out, at + C_LAST_DAY, 4, c_day[k])
        _put(out, at + C_LAST_TS, 8, c_ts[k])
        _put(out, at + C_PREV_GAP, 4, c_gap[k])
        for s in range(RING):
            out[at + C_COUNTS + s] = c_counts[k, s]
            _put(out, at + C_CENTS + 4 * s, 4, c_cents[k, s])
        at += STATE_BYTES
        if c_recent[k]:
            _put(out, at, DIGEST_BYTES, recent0[k])
            _put(out, at + DIGEST_BYTES, DIGEST_BYTES, recent1[k])
            at += RECENT_IDS_BYTES
        for m in range(c_mark_at[k], c_mark_at[k] + c_marks[k]):
            _put(out, at, 2, c_mark_part[m])
            _put(out, at + 2, 8, c_mark_off[m])
            at += MARK_BYTES
        new_lengths[k] = at - began
    for j in range(n_terminals):
        if not t_changed[j]:
            continue
        began = at
        out[at] = TERMINAL_VERSION
        _put(out, at + 1, 4, t_day[j])
        _put(out, at + 5, 2, n_marks[j])
        _put(out, at + 7, 4, kept[j])
        for s in range(TRING):
            _put(out, at + T_HEADER + 4 * s, 4, t_counts[j, s])
            _put(out, at + T_HEADER + 4 * (TRING + s), 4, t_frauds[j, s])
        at += T_PREFIX
        for m in range(mark_at[j], mark_at[j] + n_marks[j]):
            _put(out, at, 2, mark_part[m])
            _put(out, at + 2, 8, mark_off[m])
            at += MARK_BYTES
        for q in range(n_ids[j]):
            p = ids_from[j] + FRAUD_BYTES * q
            if not rolled[j] or _i4(blob, p) > t_day[j] - TRING:
                copy_bytes(out, at, blob, p, FRAUD_BYTES)
                at += FRAUD_BYTES
        new_lengths[n_customers + j] = at - began
    unusual = False
    for k in range(n_keys):
        unusual |= unreadable[k]
    for i in range(n):
        unusual |= flags[i] != 0
    return matrix, out, new_lengths, unreadable, flags, unusual


# A batch without transaction ids (read-only bytes, as the ids of a real batch are).
NO_IDS = np.frombuffer(b"", np.uint8), np.zeros(0, np.int64)


def compile_kernels() -> float:
    """Compile the kernels before any batch (once per process; see ``jit.warm_up``)."""
    one = np.zeros(1, np.int64)
    return warm_up("feature kernels", [batch_features], lambda: batch_features(
        np.frombuffer(b"", np.uint8), np.full(2, -1, np.int64), 1, one, one,
        np.full(1, DAY_MS, np.int64), np.ones(1, np.float64), one, one,
        np.frombuffer(b"1", np.uint8), np.ones(1, np.int64)))
