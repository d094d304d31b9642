"""Request bodies to transactions, with the stream's own decoder and checks.

Every transaction of a body goes through ``stream.events.decode_transaction`` (types,
ids, amount, timestamp) and the event-time bounds, exactly as a Kafka message does. A
body with any invalid transaction is refused whole, with one problem per fault: where
it is (``loc``, as in FastAPI's 422 answers: ``["body", "transactions", 3, "amount"]``)
and the reason.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from fraudstream.stream.events import (
    DEFAULT_MAX_DEPTH,
    EventTimeBounds,
    Rejected,
    Transaction,
    check_depth,
    decode_transaction,
)

Loc = tuple[str | int, ...]
BATCH_FIELD = "transactions"
VERTEX_FIELD = "instances"
CSV_COLUMNS = ("transaction_id", "timestamp", "customer_id", "terminal_id", "amount",
               "currency", "channel", "country")
CSV_REQUIRED = CSV_COLUMNS[:5]

_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Problem:
    loc: Loc
    msg: str
    type: str = "value_error"


class InvalidRequest(Exception):
    """A body that cannot be scored; ``problems`` lists every fault found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Limits:
    max_batch: int
    max_event_bytes: int
    bounds: EventTimeBounds
    max_depth: int = DEFAULT_MAX_DEPTH  # of one transaction; a batch body nests 2 more


# A problem's ``type`` for an event refused for its size or its depth: the answer is then
# 413 (size) or 422, as for the body itself.
PROBLEM_TYPES = {"size": "too_large", "depth": "too_deep"}


@dataclass(frozen=True)
class ParsedTransactions:
    """Valid transactions in request order, their event times (epoch ms), and whether
    the body was a batch (the answer then is a batch too)."""

    transactions: list[Transaction]
    timestamps_ms: list[int]
    is_batch: bool

    def __len__(self) -> int:
        return len(self.transactions)


def parse_score_body(body: bytes, limits: Limits, now_ms: int) -> ParsedTransactions:
    """``POST /v1/score`` and JSON ``/invocations``: one transaction object, or
    ``{"transactions": [...]}``."""
    fields = _top_level(body, limits)
    if BATCH_FIELD in fields:
        items = _items(fields[BATCH_FIELD], ("body", BATCH_FIELD), limits.max_batch)
        return _decode_all(items, ("body", BATCH_FIELD), limits, now_ms, is_batch=True)
    return _decode_all([body], ("body",), limits, now_ms, is_batch=False, indexed=False)


def parse_instances(body: bytes, limits: Limits, now_ms: int) -> ParsedTransactions:
    """Vertex AI: ``{"instances": [transaction, ...], "parameters": {...}}``;
    parameters are ignored."""
    fields = _top_level(body, limits)
    if VERTEX_FIELD not in fields:
        raise InvalidRequest([Problem(("body", VERTEX_FIELD), "field required", "missing")])
    items = _items(fields[VERTEX_FIELD], ("body", VERTEX_FIELD), limits.max_batch)
    return _decode_all(items, ("body", VERTEX_FIELD), limits, now_ms, is_batch=True)


def parse_csv(body: bytes, limits: Limits, now_ms: int) -> ParsedTransactions:
    """SageMaker ``text/csv``: one transaction per row, columns in ``CSV_COLUMNS`` order
    (the last three optional), or named by a header row that starts with
    ``transaction_id``. Problems name the row (0-based, header excluded)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest([Problem(("body",), f"not UTF-8 text: {exc}")]) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise InvalidRequest([Problem(("body",), f"not valid CSV: {exc}")]) from None
    columns: Sequence[str] = CSV_COLUMNS
    if rows and rows[0] and rows[0][0].strip() == CSV_COLUMNS[0]:
        columns = _csv_header(rows.pop(0))
    if not rows:
        raise InvalidRequest([Problem(("body",), "no transaction rows")])
    if len(rows) > limits.max_batch:
        raise InvalidRequest([Problem(("body",), f"at most {limits.max_batch} rows per "
                                                 f"request, got {len(rows)}")])
    items: list[bytes | None] = []  # None: the row was refused for its shape
    problems: list[Problem] = []
    for index, row in enumerate(rows):
        lo, hi = (len(columns), len(columns)) if columns is not CSV_COLUMNS else (5, 8)
        if not lo <= len(row) <= hi:
            expected = str(lo) if lo == hi else f"{lo} to {hi}"
            problems.append(Problem(("body", index), f"expected {expected} columns, "
                                                     f"got {len(row)}"))
            items.append(None)
            continue
        items.append(_encode(_csv_event(columns, row)))
    return _decode_all(items, ("body",), limits, now_ms, is_batch=True, prior=problems)


def _csv_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    unknown = [n for n in names if n not in CSV_COLUMNS]
    missing = [n for n in CSV_REQUIRED if n not in names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    problems = [Problem(("body", "header"), f"unknown column {n!r}") for n in unknown]
    problems += [Problem(("body", "header"), f"missing column {n!r}") for n in missing]
    problems += [Problem(("body", "header"), f"column {n!r} appears twice")
                 for n in duplicated]
    if problems:
        raise InvalidRequest(problems)
    return names


def _csv_event(columns: Sequence[str], row: list[str]) -> dict[str, object]:
    """A CSV row as the JSON event it stands for: epoch-millisecond timestamps and
    amounts as numbers where they read as such (anything else is left as text, for the
    decoder to refuse with its usual reason); empty optional cells left out."""
    event: dict[str, object] = {}
    for name, cell in zip(columns[:len(row)], row, strict=True):
        value = cell.strip()
        if name == "timestamp" and value.lstrip("-").isdigit():
            event[name] = int(value)
        elif name == "amount":
            event[name] = _number_or_text(value)
        elif value or name in CSV_REQUIRED:
            event[name] = value
    return event


def _number_or_text(value: str) -> float | str:
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _top_level(body: bytes, limits: Limits) -> dict[str, msgspec.Raw]:
    """The body's fields, after a depth check of the whole body (the decoder must never
    meet nesting it would recurse into)."""
    try:
        check_depth(body, limits.max_depth + 2)
        return _object_decoder.decode(body)
    except Rejected as exc:
        raise InvalidRequest([Problem(("body",), exc.reason, "too_deep")]) from None
    except msgspec.ValidationError:
        raise InvalidRequest([Problem(("body",), "expected a JSON object")]) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest([Problem(("body",), f"not valid JSON: {exc}",
                                      "json_invalid")]) from None
    except Exception as exc:  # whatever the bytes do, the answer is a 4xx
        raise InvalidRequest([Problem(("body",), f"cannot decode: {type(exc).__name__}",
                                      "json_invalid")]) from None


def _items(raw: msgspec.Raw, loc: Loc, max_batch: int) -> list[bytes]:
    try:
        items = _list_decoder.decode(raw)
    except msgspec.MsgspecError:
        raise InvalidRequest([Problem(loc, "expected an array of transactions")]) from None
    if not items:
        raise InvalidRequest([Problem(loc, "at least 1 transaction is needed")])
    if len(items) > max_batch:
        raise InvalidRequest([Problem(loc, f"at most {max_batch} transactions per request, "
                                           f"got {len(items)}")])
    return [bytes(item) for item in items]


def _decode_all(items: Sequence[bytes | None], loc: Loc, limits: Limits, now_ms: int,
                is_batch: bool, indexed: bool = True,
                prior: Sequence[Problem] = ()) -> ParsedTransactions:
    problems = list(prior)
    transactions: list[Transaction] = []
    timestamps: list[int] = []
    for index, raw in enumerate(items):
        if raw is None:
            continue
        try:
            event, ts = decode_transaction(raw, limits.max_event_bytes, limits.max_depth)
            limits.bounds.check(ts, now_ms)
        except Rejected as exc:
            where = (*loc, index) if indexed else loc
            problems.append(Problem((*where, exc.field) if exc.field else where, exc.reason,
                                    PROBLEM_TYPES.get(exc.kind or "", "value_error")))
            continue
        transactions.append(event)
        timestamps.append(ts)
    if problems:
        raise InvalidRequest(problems)
    return ParsedTransactions(transactions, timestamps, is_batch)
