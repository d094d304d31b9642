"""Transaction and label events: fast typed decoding with a reason for every rejection."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import msgspec
import numpy as np

MAX_ID_LENGTH = 128
DEFAULT_MAX_DEPTH = 32  # events are flat; ignored extra fields may nest a little
MAX_AMOUNT = 1e9  # far above any card payment; keeps cents well inside int64
# Epoch milliseconds between 2000-01-01 and 2100-01-01: anything else is a unit mistake.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000

Id = str | int
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class Transaction(msgspec.Struct, forbid_unknown_fields=False):
    transaction_id: Id
    timestamp: str | int
    customer_id: Id
    terminal_id: Id
    amount: Annotated[float, msgspec.Meta(gt=0)]
    currency: str | None = None
    channel: str | None = None
    country: str | None = None


class Label(msgspec.Struct, forbid_unknown_fields=False):
    transaction_id: Id
    customer_id: Id
    terminal_id: Id
    timestamp: str | int
    label_time: str | int
    is_fraud: bool


class Rejected(Exception):
    """An event that cannot be processed; ``reason`` says why, ``field`` names the field
    at fault when one is (None for the event as a whole), and ``kind`` is "size" or
    "depth" for an event refused as too large or too deeply nested (an HTTP caller
    answers those with 413 and 422)."""

    def __init__(self, reason: str, field: str | None = None, kind: str | None = None,
                 ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.kind = kind


transaction_decoder = msgspec.json.Decoder(Transaction)
_label_decoder = msgspec.json.Decoder(Label)


def decoded_id(value: Id) -> str:
    """An id of an event from ``decode_transaction`` or ``decode_label``: decoding made
    it a str (``normalise_id``), though the field's type still says what the JSON may
    hold."""
    assert isinstance(value, str), "decoded event ids are normalised to str"
    return value


def normalise_id(value: Id, field: str) -> str:
    text = str(value) if not isinstance(value, str) else value
    if not text or len(text) > MAX_ID_LENGTH:
        raise Rejected(f"{field} must be 1..{MAX_ID_LENGTH} characters", field)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: it could not be a Redis key
            raise Rejected(f"{field} is not valid Unicode", field) from None
    return text


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = np.zeros(256, dtype=np.int8)
_OPENERS[[ord("{"), ord("[")]] = 1
_OPENERS[[ord("}"), ord("]")]] = -1


def nesting_depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests objects and arrays (brackets inside
    strings do not count). Linear, and never recursive: safe on hostile input."""
    bare = _JSON_STRING.sub(b'""', raw)
    steps = _OPENERS[np.frombuffer(bare, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def check_depth(raw: bytes, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth``. A flat event has one bracket, so
    the exact scan runs only when the brackets alone could exceed the limit."""
    if raw.count(b"{") + raw.count(b"[") <= max_depth:
        return
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise Rejected(f"too deeply nested: depth {depth} exceeds the limit of {max_depth}",
                       kind="depth")


def parse_timestamp(value: str | int, field: str = "timestamp") -> int:
    """Epoch milliseconds from epoch milliseconds or an RFC 3339 string with a zone."""
    if isinstance(value, int):
        ts = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Rejected(f"{field} is not RFC 3339 or epoch milliseconds", field) from None
        if moment.tzinfo is None:
            raise Rejected(f"{field} has no time zone", field)
        ts = (moment - _EPOCH) // _ONE_MS  # integer arithmetic: no float rounding
    if not MIN_TS_MS <= ts <= MAX_TS_MS:
        raise Rejected(f"{field} is outside 2000..2100 (epoch milliseconds expected)", field)
    return ts


@dataclass(frozen=True)
class EventTimeBounds:
    """How far event time may stray from the clock before an event is refused: a far
    future timestamp would roll every ring forward and wipe the real history."""

    max_age_ms: int
    max_lead_ms: int

    @classmethod
    def of(cls, max_age_days: float, max_lead_s: float) -> EventTimeBounds:
        return cls(int(max_age_days * 86_400_000), int(max_lead_s * 1000))

    def check(self, ts_ms: int, now_ms: int, field: str = "timestamp") -> None:
        if ts_ms < now_ms - self.max_age_ms:
            days = (now_ms - ts_ms) / 86_400_000
            raise Rejected(f"{field} is {days:.1f} days old, beyond the "
                           f"{self.max_age_ms / 86_400_000:g}-day limit", field)
        if ts_ms > now_ms + self.max_lead_ms:
            ahead = (ts_ms - now_ms) / 1000
            raise Rejected(f"{field} is {ahead:.0f}s in the future, beyond the "
                           f"{self.max_lead_ms / 1000:g}s limit", field)


# msgspec names the field in its message: "... - at `$.amount`" or "missing required
# field `amount`" (top-level fields only: events are flat objects).
_FIELD_IN_MESSAGE = re.compile(r"at `\$\.(\w+)|missing required field `(\w+)`")


def _rejection(exc: msgspec.MsgspecError) -> Rejected:
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return Rejected(f"not valid JSON: {exc}")
    found = _FIELD_IN_MESSAGE.search(str(exc))
    return Rejected(f"invalid event: {exc}", (found.group(1) or found.group(2)) if found else None)


_Event = TypeVar("_Event", Transaction, Label)


def _decode(raw: bytes | None, max_bytes: int, max_depth: int,
            decoder: msgspec.json.Decoder[_Event], what: str) -> _Event:
    """Size and depth checks, typed decode and id normalisation shared by every event
    kind."""
    if raw is None:
        raise Rejected("empty message (no value)")
    if len(raw) > max_bytes:
        raise Rejected(f"{what} of {len(raw)} bytes exceeds the {max_bytes}-byte limit",
                       kind="size")
    check_depth(raw, max_depth)
    try:
        event = decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        raise _rejection(exc) from None
    for field in ("transaction_id", "customer_id", "terminal_id"):
        setattr(event, field, normalise_id(getattr(event, field), field))
    return event


def _unexpected(exc: Exception) -> Rejected:
    """Whatever else decoding one message raised: that message is rejected, never the
    worker stopped (the reason names the exception, bounded in length)."""
    detail = str(exc)
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return Rejected(f"cannot decode: {type(exc).__name__}: {detail}")


def decode_transaction(raw: bytes | None, max_bytes: int,
                       max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Transaction, int]:
    """(event, timestamp in epoch ms), or raise Rejected with the reason. Raises
    nothing else, whatever the bytes."""
    try:
        event: Transaction = _decode(raw, max_bytes, max_depth, transaction_decoder,
                                     "event")
        if not math.isfinite(event.amount):
            raise Rejected("amount is not a finite number", "amount")
        if event.amount > MAX_AMOUNT:
            raise Rejected(f"amount exceeds {MAX_AMOUNT:.0e}", "amount")
        return event, parse_timestamp(event.timestamp)
    except Rejected:
        raise
    except Exception as exc:
        raise _unexpected(exc) from None


def decode_label(raw: bytes | None, max_bytes: int,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Label, int, int]:
    """(label, transaction timestamp ms, label time ms), or raise Rejected (and nothing
    else)."""
    try:
        label: Label = _decode(raw, max_bytes, max_depth, _label_decoder, "label")
        return (label, parse_timestamp(label.timestamp),
                parse_timestamp(label.label_time, "label_time"))
    except Rejected:
        raise
    except Exception as exc:
        raise _unexpected(exc) from None
