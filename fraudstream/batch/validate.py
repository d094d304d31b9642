"""Rows of a transaction file checked with the stream's rules (stream/events.py).

A row is accepted exactly when the worker would accept the same transaction as a JSON
event: ids are text or integers of 1..128 characters, ``timestamp`` is epoch milliseconds
or RFC 3339 with a zone between 2000 and 2100, ``amount`` is a finite number > 0 and at
most 1e9. Files carry no JSON types, so: an empty CSV cell is a missing field, a CSV
amount is read as a number, and a timestamp written as digits is epoch milliseconds.
Clock bounds (``FRAUDSTREAM_MAX_EVENT_AGE_DAYS``) do not apply: a file is history.

Optional labels: ``is_fraud`` (true/false, 1/0; empty for none) and ``label_time`` (when
the label was confirmed, a timestamp as above). A label the stream could not have
applied (malformed, or confirmed before its transaction) is ignored and reported; the
row's transaction is still scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudstream.batch.files import InputFile, InputFileError
from fraudstream.stream.events import (
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    Rejected,
    parse_timestamp,
)

ID_COLUMNS = ("transaction_id", "customer_id", "terminal_id")
REQUIRED_COLUMNS = ("transaction_id", "timestamp", "customer_id", "terminal_id", "amount")
OPTIONAL_TEXT_COLUMNS = ("currency", "channel", "country")
LABEL_COLUMNS = ("is_fraud", "label_time")
_MAX_DIGITS = 16  # longer digit strings are far outside 2000..2100 (and int64)
_TRUE, _FALSE = frozenset({"1", "true"}), frozenset({"0", "false"})
# None as a numpy operand: what a bare None in np.equal becomes (numpy's types refuse it).
_NONE = np.array(None, dtype=object)


def is_none(values: np.ndarray) -> np.ndarray:
    """Booleans: which of ``values`` (an object array of reasons) are None."""
    mask: np.ndarray = np.equal(values, _NONE)  # typed "ndarray | Any" (scalar operands)
    return mask


def not_none(values: np.ndarray) -> np.ndarray:
    """Booleans: which of ``values`` are not None."""
    mask: np.ndarray = np.not_equal(values, _NONE)
    return mask


@dataclass(frozen=True)
class Layout:
    """Which columns the file has and how its labels are read."""

    labels: bool  # is_fraud is used
    label_times: bool  # label_time is used: a label counts from then on

    @property
    def columns(self) -> list[str]:
        wanted = [*REQUIRED_COLUMNS, *OPTIONAL_TEXT_COLUMNS]
        if self.labels:
            wanted.append("is_fraud")
        if self.label_times:
            wanted.append("label_time")
        return wanted


@dataclass
class Checked:
    """One chunk after validation; arrays are aligned with the chunk's rows."""

    rows: np.ndarray
    reasons: np.ndarray  # object: None for an accepted row, else why it was rejected
    ids: dict[str, pa.Array]  # normalised text ids
    timestamps: np.ndarray  # int64 epoch ms
    amounts: np.ndarray  # float64
    fraud: np.ndarray  # int8: 1 for a usable fraud label
    labelled: np.ndarray  # bool: a usable label (fraud or not)
    known_ms: np.ndarray | None  # int64: when each label is confirmed
    label_reasons: np.ndarray  # object: why a row's label is ignored

    @property
    def accepted(self) -> np.ndarray:
        return is_none(self.reasons)


def layout_of(source: InputFile, use_labels: bool = True) -> Layout:
    """Check that every required column is there and, for typed files, of a usable type."""
    missing = [c for c in REQUIRED_COLUMNS if c not in source.columns]
    if missing:
        found = ", ".join(source.columns[:12]) + (", ..." if len(source.columns) > 12 else "")
        raise InputFileError(f"input {source.path} has no column {', '.join(missing)} "
                             f"(columns: {found})")
    labels = use_labels and "is_fraud" in source.columns
    layout = Layout(labels, labels and "label_time" in source.columns)
    if source.typed:
        for name in layout.columns:
            if name in source.types:
                _check_type(source, name, _value_type(source.types[name]))
    return layout


_KINDS: dict[str, tuple[str, Callable[[pa.DataType], bool]]] = {
    "id": ("text or integers", lambda t: _is_text(t) or pa.types.is_integer(t)),
    "time": ("epoch milliseconds, RFC 3339 text or a timestamp with a time zone",
             lambda t: _is_text(t) or pa.types.is_integer(t)
             or (pa.types.is_timestamp(t) and t.tz is not None)),
    "amount": ("a number", lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)
               or pa.types.is_decimal(t)),
    "text": ("text", lambda t: _is_text(t)),
    "flag": ("true/false or 1/0", lambda t: pa.types.is_boolean(t) or pa.types.is_integer(t)
             or pa.types.is_floating(t) or _is_text(t)),
}
_COLUMN_KINDS = {"transaction_id": "id", "customer_id": "id", "terminal_id": "id",
                 "timestamp": "time", "label_time": "time", "amount": "amount",
                 "is_fraud": "flag", **dict.fromkeys(OPTIONAL_TEXT_COLUMNS, "text")}


def _check_type(source: InputFile, name: str, kind: pa.DataType) -> None:
    if pa.types.is_null(kind):
        return  # every value missing: each row says so
    expected, accepts = _KINDS[_COLUMN_KINDS[name]]
    if not accepts(kind):
        detail = " without a time zone" if pa.types.is_timestamp(kind) else ""
        raise InputFileError(f"input {source.path}: column {name} is {kind}{detail}; "
                             f"expected {expected}")


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))  # pyarrow: Any


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column


class _Reasons:
    """The first reason each row fails for."""

    def __init__(self, n: int) -> None:
        self.values = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, reason: str | np.ndarray) -> None:
        where = mask & is_none(self.values)
        if isinstance(reason, np.ndarray):
            self.values[where] = reason[where]
        else:
            self.values[where] = reason


def _missing(column: pa.Array, typed: bool) -> np.ndarray:
    """Null, and in a CSV file also empty, cells."""
    missing: np.ndarray = column.is_null().to_numpy(zero_copy_only=False)  # pyarrow: Any
    if not typed and _is_text(column.type):
        missing |= pc.equal(pc.utf8_length(column), 0).fill_null(True).to_numpy(
            zero_copy_only=False)
    return missing


def _ids(column: pa.Array, name: str, typed: bool, reasons: _Reasons) -> pa.Array:
    missing = _missing(column, typed)
    text = column if _is_text(column.type) else column.cast(pa.string())
    length = pc.utf8_length(text).fill_null(0).to_numpy(zero_copy_only=False)
    reasons.add(missing, f"{name} is missing")
    reasons.add((length < 1) | (length > MAX_ID_LENGTH),
                f"{name} must be 1..{MAX_ID_LENGTH} characters")
    return text


def _rejection(check: Callable[[], object]) -> str:
    try:
        check()
    except Rejected as exc:
        return exc.reason
    raise AssertionError("expected a rejection")


def event_times(column: pa.Array, name: str, typed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(epoch ms, reason or None) per row, by the stream's ``parse_timestamp``."""
    n = len(column)
    values = np.zeros(n, dtype=np.int64)
    why = np.full(n, None, dtype=object)
    missing = _missing(column, typed)
    why[missing] = f"{name} is missing"
    if pa.types.is_null(column.type):
        return values, why
    outside = _rejection(lambda: parse_timestamp(MIN_TS_MS - 1, name))
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", column.type.tz), safe=False).cast(pa.int64())
    if pa.types.is_integer(column.type):
        in_range = pc.and_(pc.greater_equal(column, MIN_TS_MS), pc.less_equal(column, MAX_TS_MS))
        in_range = in_range.fill_null(False).to_numpy(zero_copy_only=False)
        values[in_range] = pc.filter(column, pa.array(in_range)).cast(pa.int64()).to_numpy()
        why[~in_range & ~missing] = outside
        return values, why
    digits = pc.match_substring_regex(column, r"^-?[0-9]+$").fill_null(False).to_numpy(
        zero_copy_only=False) & ~missing
    short = pc.utf8_length(column).fill_null(0).to_numpy(zero_copy_only=False) <= _MAX_DIGITS
    numeric = np.zeros(n, dtype=np.int64)
    if (digits & short).any():
        numeric[digits & short] = pc.filter(column, pa.array(digits & short)).cast(
            pa.int64()).to_numpy()
    ok = digits & short & (numeric >= MIN_TS_MS) & (numeric <= MAX_TS_MS)
    values[ok] = numeric[ok]
    why[digits & ~ok] = outside
    text = ~digits & ~missing
    if text.any():
        # RFC 3339 text: parsed once per distinct value, by the stream's own function.
        distinct = pc.unique(pc.filter(column, pa.array(text)))
        parsed = [_parse_or_reason(v, name) for v in distinct.to_pylist()]
        index = pc.index_in(column, value_set=distinct).fill_null(0).to_numpy(
            zero_copy_only=False)
        parsed_ms = np.array([p[0] for p in parsed], dtype=np.int64)
        parsed_why = np.array([p[1] for p in parsed], dtype=object)
        values[text] = parsed_ms[index[text]]
        why[text] = parsed_why[index[text]]
    return values, why


def _parse_or_reason(value: str, name: str) -> tuple[int, str | None]:
    try:
        return parse_timestamp(value, name), None
    except Rejected as exc:
        return 0, exc.reason


def _amounts(column: pa.Array, typed: bool, reasons: _Reasons) -> np.ndarray:
    missing = _missing(column, typed)
    reasons.add(missing, "amount is missing")
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=np.float64)
    if _is_text(column.type):
        amounts = pd.to_numeric(pd.Series(column.to_numpy(zero_copy_only=False)),
                                errors="coerce").to_numpy(dtype=np.float64)
        reasons.add(np.isnan(amounts), "amount is not a number")
    else:
        amounts = column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        reasons.add(amounts <= 0, "amount must be > 0")
        reasons.add(~np.isfinite(amounts), "amount is not a finite number")
        reasons.add(amounts > MAX_AMOUNT, f"amount exceeds {MAX_AMOUNT:.0e}")
    return np.where(np.isfinite(amounts), amounts, 0.0)


def _flags(column: pa.Array, typed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is fraud, has a label, reason the label is ignored) per row."""
    n = len(column)
    missing = _missing(column, typed)
    if pa.types.is_null(column.type):
        return np.zeros(n, np.int8), np.zeros(n, bool), np.full(n, None, dtype=object)
    if _is_text(column.type):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(column)).to_numpy(zero_copy_only=False)
        fraud = np.isin(text, list(_TRUE))
        legit = np.isin(text, list(_FALSE))
    else:
        numbers = column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        fraud, legit = numbers == 1, numbers == 0
    why = np.full(n, None, dtype=object)
    why[~(fraud | legit | missing)] = "label ignored: is_fraud must be true/false or 1/0"
    return fraud.astype(np.int8), fraud | legit, why


def check_chunk(table: pa.Table, rows: np.ndarray, layout: Layout, typed: bool) -> Checked:
    """Validate one chunk: every row accepted or given the reason it is rejected."""
    n = table.num_rows
    reasons = _Reasons(n)
    ids = {"transaction_id": _ids(_column(table, "transaction_id"), "transaction_id", typed,
                                  reasons)}
    timestamps, why = event_times(_column(table, "timestamp"), "timestamp", typed)
    reasons.add(not_none(why), why)
    for name in ("customer_id", "terminal_id"):
        ids[name] = _ids(_column(table, name), name, typed, reasons)
    amounts = _amounts(_column(table, "amount"), typed, reasons)

    fraud, labelled = np.zeros(n, np.int8), np.zeros(n, bool)
    label_why = np.full(n, None, dtype=object)
    known_ms = None
    if layout.labels:
        fraud, labelled, label_why = _flags(_column(table, "is_fraud"), typed)
    if layout.label_times:
        known_ms, time_why = event_times(_column(table, "label_time"), "label_time", typed)
        has_time = is_none(time_why)
        bad_time = labelled & ~has_time & np.not_equal(time_why, "label_time is missing")
        label_why[bad_time] = "label ignored: " + time_why[bad_time].astype(str)
        early = labelled & has_time & (known_ms < timestamps)
        label_why[early] = "label ignored: label_time is before the transaction's timestamp"
        labelled &= has_time & ~early
    fraud = np.where(labelled, fraud, 0).astype(np.int8)
    return Checked(rows, reasons.values, ids, timestamps, amounts, fraud, labelled, known_ms,
                   label_why)
