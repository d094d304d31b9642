"""Batch rows are accepted or rejected by the stream's rules (stream/events.py)."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from fraudstream.batch.files import InputFile, InputFileError
from fraudstream.batch.validate import REQUIRED_COLUMNS, Checked, Layout, check_chunk, layout_of
from fraudstream.stream.events import MAX_TS_MS, MIN_TS_MS, Rejected, decode_transaction

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fraudstream-unit-hypothesis")

T = 1_764_072_000_000  # 2025-11-25T12:00:00Z
NO_LABELS = Layout(labels=False, label_times=False)
PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def typed(rows: list[dict[str, Any]], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    names = list(rows[0])
    return pa.table({n: pa.array([r[n] for r in rows], (types or {}).get(n)) for n in names})


def text(rows: list[dict[str, str]]) -> pa.Table:
    return pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in rows[0]})


def check(table: pa.Table, layout: Layout = NO_LABELS, is_typed: bool = True) -> Checked:
    return check_chunk(table, np.arange(1, table.num_rows + 1), layout, is_typed)


def row(**changes: Any) -> dict[str, Any]:
    base = {"transaction_id": "t1", "timestamp": T, "customer_id": "c1", "terminal_id": "p1",
            "amount": 12.5}
    return {**base, **changes}


# -- one rule at a time ---------------------------------------------------------------

@pytest.mark.parametrize("changes, reason", [
    ({"transaction_id": None}, "transaction_id is missing"),
    ({"customer_id": ""}, "customer_id must be 1..128 characters"),
    ({"terminal_id": "x" * 129}, "terminal_id must be 1..128 characters"),
    ({"timestamp": None}, "timestamp is missing"),
    ({"timestamp": 1_700_000_000}, "timestamp is outside 2000..2100 (epoch milliseconds expected)"),
    ({"timestamp": "2025-11-25T12:00:00"}, "timestamp has no time zone"),
    ({"timestamp": "yesterday"}, "timestamp is not RFC 3339 or epoch milliseconds"),
    ({"amount": None}, "amount is missing"),
    ({"amount": 0.0}, "amount must be > 0"),
    ({"amount": -3.0}, "amount must be > 0"),
    ({"amount": math.inf}, "amount is not a finite number"),
    ({"amount": math.nan}, "amount is not a finite number"),
    ({"amount": 2e9}, "amount exceeds 1e+09"),
])
def test_each_rule_rejects_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    ok, bad = row(), row(**changes)
    types = {"timestamp": pa.string()} if isinstance(bad["timestamp"], str) else None
    if types:
        ok["timestamp"] = "2025-11-25T12:00:00Z"
    checked = check(typed([ok, bad], types))
    assert checked.reasons.tolist() == [None, reason]


def test_accepted_values_are_normalised_like_the_stream() -> None:
    rows = [row(transaction_id=7, customer_id=-3, terminal_id=10**15, amount=5),
            row(timestamp="2025-11-25T13:00:00.1239+01:00")]
    types = {"transaction_id": pa.int64(), "customer_id": pa.int64(),
             "terminal_id": pa.int64(), "amount": pa.int64()}
    first = check(typed(rows[:1], types))
    assert first.accepted.tolist() == [True]
    assert first.ids["transaction_id"].to_pylist() == ["7"]
    assert first.ids["customer_id"].to_pylist() == ["-3"]
    assert first.ids["terminal_id"].to_pylist() == ["1000000000000000"]
    assert first.amounts.tolist() == [5.0]
    second = check(typed(rows[1:], {"timestamp": pa.string()}))
    assert second.timestamps.tolist() == [T + 123]  # whole milliseconds, floored


def test_a_timestamp_column_with_a_zone_is_epoch_milliseconds() -> None:
    moment = datetime(2025, 11, 25, 12, 0, 0, 999_999, tzinfo=UTC)
    table = typed([row(timestamp=moment)], {"timestamp": pa.timestamp("us", "UTC")})
    assert check(table).timestamps.tolist() == [T + 999]


def test_csv_text_is_read_as_the_stream_would_read_the_json_event() -> None:
    rows = [{"transaction_id": "007", "timestamp": str(T), "customer_id": "c",
             "terminal_id": "p", "amount": "1e2"},
            {"transaction_id": "8", "timestamp": "", "customer_id": "c", "terminal_id": "p",
             "amount": "12,50"},
            {"transaction_id": "9", "timestamp": str(T), "customer_id": "c", "terminal_id": "",
             "amount": "nan"}]
    checked = check(text(rows), is_typed=False)
    assert checked.reasons.tolist() == [None, "timestamp is missing", "terminal_id is missing"]
    assert checked.ids["transaction_id"][0].as_py() == "007"  # exact spelling kept
    assert checked.amounts[0] == 100.0
    assert check(text([{**rows[0], "amount": "12,50"}]), is_typed=False).reasons.tolist() == [
        "amount is not a number"]


def test_the_first_failing_field_is_the_reason() -> None:
    checked = check(typed([row(transaction_id=None, amount=-1.0), row(amount=-1.0)]))
    assert checked.reasons.tolist() == ["transaction_id is missing", "amount must be > 0"]


# -- labels -------------------------------------------------------------------------

def test_labels_by_flag_and_time() -> None:
    layout = Layout(labels=True, label_times=True)
    rows = [{"is_fraud": "true", "label_time": str(T + 1)},
            {"is_fraud": "0", "label_time": str(T)},
            {"is_fraud": "", "label_time": str(T)},
            {"is_fraud": "1", "label_time": ""},
            {"is_fraud": "maybe", "label_time": str(T)},
            {"is_fraud": "1", "label_time": str(T - 1)},
            {"is_fraud": "1", "label_time": "soon"}]
    table = text([{**{k: str(v) for k, v in row().items()}, "transaction_id": str(i), **r}
                  for i, r in enumerate(rows)])
    checked = check(table, layout, is_typed=False)
    assert checked.accepted.all(), "a label never rejects its transaction"
    assert checked.labelled.tolist() == [True, True, False, False, False, False, False]
    assert checked.fraud.tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert checked.known_ms is not None and checked.known_ms[:2].tolist() == [T + 1, T]
    assert checked.label_reasons.tolist() == [
        None, None, None, None,
        "label ignored: is_fraud must be true/false or 1/0",
        "label ignored: label_time is before the transaction's timestamp",
        "label ignored: label_time is not RFC 3339 or epoch milliseconds"]


def test_typed_flags_and_no_label_times() -> None:
    layout = Layout(labels=True, label_times=False)
    table = typed([row(is_fraud=v) for v in (True, False, None)], {"is_fraud": pa.bool_()})
    checked = check(table, layout)
    assert checked.fraud.tolist() == [1, 0, 0]
    assert checked.labelled.tolist() == [True, True, False]
    assert checked.known_ms is None
    numbers = check(typed([row(is_fraud=v) for v in (1, 0, 2)], {"is_fraud": pa.int8()}), layout)
    assert numbers.fraud.tolist() == [1, 0, 0]
    assert numbers.label_reasons[2] == "label ignored: is_fraud must be true/false or 1/0"


# -- columns ------------------------------------------------------------------------

def source(columns: dict[str, pa.DataType], fmt: str = "parquet") -> InputFile:
    return InputFile(Path("in." + fmt), fmt, list(columns), columns, 0, "rows")


def test_a_missing_column_is_named() -> None:
    columns = {c: pa.string() for c in REQUIRED_COLUMNS if c not in ("amount", "timestamp")}
    with pytest.raises(InputFileError, match=r"^input in.parquet has no column timestamp, "
                                             r"amount \(columns: transaction_id, "):
        layout_of(source(columns))


@pytest.mark.parametrize("name, kind, expected", [
    ("amount", pa.string(), "column amount is string; expected a number"),
    ("timestamp", pa.float64(), "column timestamp is double; expected epoch milliseconds"),
    ("timestamp", pa.timestamp("ms"), "column timestamp is timestamp[ms] without a time zone"),
    ("customer_id", pa.float64(), "column customer_id is double; expected text or integers"),
    ("currency", pa.int32(), "column currency is int32; expected text"),
    ("is_fraud", pa.list_(pa.int8()), "column is_fraud is list<item: int8>; expected true/false"),
])
def test_typed_columns_of_the_wrong_type_are_refused(name: str, kind: pa.DataType,
                                                     expected: str) -> None:
    columns = {c: pa.string() for c in REQUIRED_COLUMNS} | {
        "timestamp": pa.int64(), "amount": pa.float64(), "currency": pa.string(),
        "is_fraud": pa.bool_()}
    layout_of(source(columns))  # these types are fine
    columns[name] = kind
    with pytest.raises(InputFileError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        layout_of(source(columns))


def test_label_columns_are_used_unless_ignored() -> None:
    columns = {c: pa.string() for c in (*REQUIRED_COLUMNS, "is_fraud", "label_time")}
    assert layout_of(source(columns, "csv")) == Layout(labels=True, label_times=True)
    assert layout_of(source(columns, "csv"), use_labels=False) == NO_LABELS
    del columns["is_fraud"]
    assert layout_of(source(columns, "csv")) == NO_LABELS


# -- the same verdict as the stream, on generated values ------------------------------

def mostly(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any],
           ) -> st.SearchStrategy[Any]:
    """Valid four times in five, so that whole rows are often accepted too."""
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda ok: valid if ok else anything)


id_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=130)
ids = mostly(st.one_of(st.integers(-(2**63), 2**63 - 1),
                       st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                               max_size=128)),
             st.one_of(st.none(), id_text, st.just(""), st.just("x" * 128), st.just("y" * 129)))
moments = st.datetimes(datetime(1990, 1, 1), datetime(2110, 1, 1),
                       timezones=st.one_of(st.none(), st.just(UTC),
                                           st.builds(lambda m: timezone(timedelta(minutes=m)),
                                                     st.integers(-900, 900))))
timestamps = mostly(
    st.one_of(st.integers(MIN_TS_MS, MAX_TS_MS),
              st.datetimes(datetime(2000, 1, 2), datetime(2099, 12, 30), timezones=st.just(UTC))
              .map(lambda m: m.isoformat())),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
              st.integers(MIN_TS_MS - 5, MIN_TS_MS + 5), st.integers(MAX_TS_MS - 5, MAX_TS_MS + 5),
              moments.map(lambda m: m.isoformat()), moments.map(lambda m: m.isoformat(sep=" ")),
              st.text(max_size=30)))
amounts = mostly(st.floats(0.01, 1e9),
                 st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                           st.integers(-10, 2 * 10**9),
                           st.sampled_from([0.0, 1e-300, 1e9, 1e9 + 1])))


def stream_verdict(values: dict[str, Any]) -> tuple[str, str, str, int, float] | None:
    """What the worker makes of the same values as a JSON event (None: rejected)."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue  # a missing cell is a missing field
        if name == "amount" and isinstance(value, float) and not math.isfinite(value):
            if math.isnan(value):
                return None  # JSON has no NaN: the event could not even be sent
            literal = "1e999" if value > 0 else "-1e999"
        else:
            literal = msgspec.json.encode(value).decode()
        parts.append(f'"{name}": {literal}')
    try:
        event, ts = decode_transaction(("{" + ", ".join(parts) + "}").encode(), 1 << 20)
    except Rejected:
        return None
    assert isinstance(event.transaction_id, str) and isinstance(event.customer_id, str)
    assert isinstance(event.terminal_id, str)
    return event.transaction_id, event.customer_id, event.terminal_id, ts, event.amount


def batch_verdict(checked: Checked) -> tuple[str, str, str, int, float] | None:
    if not checked.accepted[0]:
        return None
    return (checked.ids["transaction_id"][0].as_py(), checked.ids["customer_id"][0].as_py(),
            checked.ids["terminal_id"][0].as_py(), int(checked.timestamps[0]),
            float(checked.amounts[0]))


def _arrow_type(value: Any) -> pa.DataType:
    if value is None:
        return pa.null()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()


@PROPERTY
@given(transaction_id=ids, customer_id=ids, terminal_id=ids, timestamp=timestamps,
       amount=amounts)
def test_a_typed_row_gets_the_stream_verdict(**values: Any) -> None:
    table = pa.table({n: pa.array([v], _arrow_type(v)) for n, v in values.items()})
    expected = stream_verdict({k: v for k, v in values.items()})
    if isinstance(values["timestamp"], str) and values["timestamp"].lstrip("-").isdigit() \
            and values["timestamp"].isascii():
        # Digits as text are epoch milliseconds in a file; in JSON they must be a number.
        expected = stream_verdict({**values, "timestamp": int(values["timestamp"])})
    assert batch_verdict(check(table)) == expected


def _as_text(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


@PROPERTY
@given(transaction_id=ids, customer_id=ids, terminal_id=ids, timestamp=timestamps,
       amount=amounts)
def test_a_csv_row_gets_the_verdict_of_the_same_values_as_json(**values: Any) -> None:
    cells = {n: _as_text(v) for n, v in values.items()}
    json_values: dict[str, Any] = {n: (None if c == "" else c) for n, c in cells.items()}
    json_values["amount"] = values["amount"]
    for name in ("transaction_id", "customer_id", "terminal_id"):
        if isinstance(values[name], int):
            json_values[name] = values[name]
    ts = cells["timestamp"]
    if ts.lstrip("-").isdigit() and ts.isascii() and ts.count("-") <= 1 and ts[:1] != "+":
        json_values["timestamp"] = int(ts)
    assert batch_verdict(check(text([cells]), is_typed=False)) == stream_verdict(json_values)
