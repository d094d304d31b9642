"""A poll's transactions decoded as columns, with the reason for every rejection.

``decode_transaction`` (``stream.events``) is the definition, one message at a time. Its
checks cost more Python than the decode itself, so a batch is decoded here in two steps:
each message by msgspec alone (size and bracket count first, as the definition does), then
the checks the definition makes per event are made once over the batch's columns (id
types, lengths and encodings, amounts, timestamps, the event-time bounds). Any message
the fast path cannot vouch for sends the whole batch through the definition, message by
message, so the outcome is the definition's whatever the input (tested on the hostile
corpus and on random batches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from fraudstream.stream.events import (
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    EventTimeBounds,
    Rejected,
    Transaction,
    decode_transaction,
    decoded_id,
    parse_timestamp,
    transaction_decoder,
)


@dataclass
class DecodedTransactions:
    """The accepted events as columns (``positions``: where each was in the input) and
    the rejected ones as (position, reason), in input order."""

    positions: list[int] = field(default_factory=list)
    transaction_ids: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    terminal_ids: list[str] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.positions)

    def timestamps_array(self) -> np.ndarray:
        return np.array(self.timestamps, dtype=np.int64)

    def amounts_array(self) -> np.ndarray:
        return np.array(self.amounts, dtype=np.float64)


def decode_transactions(values: Sequence[bytes | None], max_bytes: int, max_depth: int,
                        bounds: EventTimeBounds, now_ms: int) -> DecodedTransactions:
    """Decode a batch of message values (see the module)."""
    fast = _decode_fast(values, max_bytes, max_depth, bounds, now_ms)
    return fast if fast is not None else _decode_each(values, max_bytes, max_depth, bounds,
                                                      now_ms)


def _decode_each(values: Sequence[bytes | None], max_bytes: int, max_depth: int,
                 bounds: EventTimeBounds, now_ms: int) -> DecodedTransactions:
    """The definition, message by message."""
    out = DecodedTransactions()
    for position, raw in enumerate(values):
        try:
            event, ts = decode_transaction(raw, max_bytes, max_depth)
            bounds.check(ts, now_ms)
        except Rejected as exc:
            out.rejected.append((position, exc.reason))
            continue
        except Exception as exc:  # whatever one message does, it is only rejected
            out.rejected.append((position, f"cannot process: {type(exc).__name__}: {exc}"))
            continue
        out.positions.append(position)
        out.transaction_ids.append(decoded_id(event.transaction_id))
        out.customer_ids.append(decoded_id(event.customer_id))
        out.terminal_ids.append(decoded_id(event.terminal_id))
        out.timestamps.append(ts)
        out.amounts.append(event.amount)
    return out


def _decode_fast(values: Sequence[bytes | None], max_bytes: int, max_depth: int,
                 bounds: EventTimeBounds, now_ms: int) -> DecodedTransactions | None:
    """The batch as columns when every message passes every check, else None."""
    decode = transaction_decoder.decode
    events: list[Transaction] = []
    append = events.append
    try:
        for raw in values:
            if raw is None or len(raw) > max_bytes \
                    or raw.count(b"{") + raw.count(b"[") > max_depth:
                return None
            append(decode(raw))
    except Exception:  # whatever it is, the definition names it for that message
        return None
    if not events:
        return DecodedTransactions()
    columns = [_ids([e.transaction_id for e in events]), _ids([e.customer_id for e in events]),
               _ids([e.terminal_id for e in events])]
    if any(ids is None for ids in columns):
        return None
    stamps = _timestamps([e.timestamp for e in events])
    amounts = [e.amount for e in events]
    if stamps is None or not math.isfinite(sum(amounts)) or max(amounts) > MAX_AMOUNT:
        return None
    lowest, highest = min(stamps), max(stamps)
    if lowest < now_ms - bounds.max_age_ms or highest > now_ms + bounds.max_lead_ms:
        return None
    tx, customers, terminals = columns
    assert tx is not None and customers is not None and terminals is not None
    return DecodedTransactions(list(range(len(events))), tx, customers, terminals, stamps,
                               amounts)


def _ids(values: list[str | int]) -> list[str] | None:
    """The ids as str (an int id reads as its decimal text), or None when one would be
    rejected (empty, too long, not valid Unicode) or is unusual enough to leave to the
    definition."""
    types = set(map(type, values))
    if types == {str}:
        ids = cast("list[str]", values)
    elif types <= {str, int}:
        ids = list(map(str, values))
    else:
        return None
    if min(map(len, ids)) < 1 or max(map(len, ids)) > MAX_ID_LENGTH:
        return None
    if not "".join(ids).isascii():  # non-ASCII ids: the definition checks their encoding
        return None
    return ids


def _timestamps(stamps: list[str | int]) -> list[int] | None:
    """Epoch milliseconds (RFC 3339 strings parsed as the definition does), or None when
    one would be rejected."""
    types = set(map(type, stamps))
    if types == {int}:
        ints = cast("list[int]", stamps)
        return ints if min(ints) >= MIN_TS_MS and max(ints) <= MAX_TS_MS else None
    if not types <= {int, str}:
        return None
    try:
        return [parse_timestamp(stamp) for stamp in stamps]
    except Rejected:
        return None
