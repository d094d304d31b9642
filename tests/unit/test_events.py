"""stream.events: decoding transactions and labels, with a reason for every rejection."""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest

from fraudstream.stream.events import (
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    EventTimeBounds,
    Rejected,
    decode_label,
    decode_transaction,
    parse_timestamp,
)

LIMIT = 16_384
TS_MS = 1_522_576_800_000  # 2018-04-01T10:00:00Z


def tx(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": "t-1",
        "timestamp": "2018-04-01T10:00:00Z",
        "customer_id": "c-1",
        "terminal_id": "term-1",
        "amount": 12.34,
    }
    event.update(changes)
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def rejection(raw: bytes | None, max_bytes: int = LIMIT) -> str:
    with pytest.raises(Rejected) as caught:
        decode_transaction(raw, max_bytes)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


# --- accepted transactions -----------------------------------------------------------------


def test_valid_event_with_string_ids_and_rfc3339_z() -> None:
    event, ts = decode_transaction(encode(tx(currency="EUR", channel="web")), LIMIT)
    assert ts == TS_MS
    assert event.transaction_id == "t-1"
    assert event.customer_id == "c-1"
    assert event.terminal_id == "term-1"
    assert event.amount == 12.34
    assert event.currency == "EUR" and event.channel == "web" and event.country is None


def test_integer_ids_become_strings() -> None:
    event, _ = decode_transaction(
        encode(tx(transaction_id=17, customer_id=0, terminal_id=9_999_999_999)), LIMIT)
    assert event.transaction_id == "17"
    assert event.customer_id == "0"
    assert event.terminal_id == "9999999999"


def test_epoch_milliseconds_timestamp() -> None:
    _, ts = decode_transaction(encode(tx(timestamp=TS_MS)), LIMIT)
    assert ts == TS_MS


@pytest.mark.parametrize("text", [
    "2018-04-01T10:00:00Z",
    "2018-04-01T10:00:00+00:00",
    "2018-04-01T12:00:00+02:00",
    "2018-04-01T05:30:00-04:30",
    "2018-04-01T10:00:00.000Z",
])
def test_rfc3339_with_any_zone(text: str) -> None:
    _, ts = decode_transaction(encode(tx(timestamp=text)), LIMIT)
    assert ts == TS_MS


def test_millisecond_part_is_kept() -> None:
    _, ts = decode_transaction(encode(tx(timestamp="2018-04-01T10:00:00.250Z")), LIMIT)
    assert ts == TS_MS + 250


@pytest.mark.parametrize("text", ["2004-03-22T01:32:09.416Z", "2039-07-06T01:24:33.693Z"])
def test_rfc3339_milliseconds_are_exact(text: str) -> None:
    date, time_part = text[:-1].split("T")
    whole, millis = time_part.split(".")
    seconds = calendar.timegm(tuple(int(x) for x in date.split("-"))
                              + tuple(int(x) for x in whole.split(":")))
    assert parse_timestamp(text) == seconds * 1000 + int(millis)


def test_unknown_fields_are_ignored() -> None:
    raw = encode(tx(merchant={"mcc": 5411, "tags": ["a"]}, risk=None, extra=[1, 2]))
    event, ts = decode_transaction(raw, LIMIT)
    assert ts == TS_MS and event.customer_id == "c-1"
    assert not hasattr(event, "merchant")


def test_id_of_exactly_the_maximum_length_is_accepted() -> None:
    event, _ = decode_transaction(encode(tx(customer_id="x" * MAX_ID_LENGTH)), LIMIT)
    assert event.customer_id == "x" * MAX_ID_LENGTH


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    raw = encode(tx())
    event, _ = decode_transaction(raw, len(raw))
    assert event.transaction_id == "t-1"


def test_timestamp_range_boundaries_are_inclusive() -> None:
    assert decode_transaction(encode(tx(timestamp=MIN_TS_MS)), LIMIT)[1] == MIN_TS_MS
    assert decode_transaction(encode(tx(timestamp=MAX_TS_MS)), LIMIT)[1] == MAX_TS_MS
    assert parse_timestamp("2000-01-01T00:00:00Z") == MIN_TS_MS
    assert parse_timestamp("2100-01-01T00:00:00Z") == MAX_TS_MS


def test_small_positive_amount_is_accepted() -> None:
    event, _ = decode_transaction(encode(tx(amount=0.01)), LIMIT)
    assert event.amount == 0.01
    event, _ = decode_transaction(encode(tx(amount=7)), LIMIT)
    assert event.amount == 7.0 and isinstance(event.amount, float)


# --- rejected transactions -----------------------------------------------------------------


@pytest.mark.parametrize("raw, fragments", [
    (b"not json", ["not valid JSON"]),
    (b'{"transaction_id": "t-1", ', ["not valid JSON"]),
    (b"", ["not valid JSON"]),
    (b"[1, 2]", ["invalid event", "object"]),
    (b'"just a string"', ["invalid event", "object"]),
])
def test_malformed_payloads(raw: bytes, fragments: list[str]) -> None:
    reason = rejection(raw)
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize("field", ["transaction_id", "timestamp", "customer_id",
                                   "terminal_id", "amount"])
def test_missing_required_field(field: str) -> None:
    event = tx()
    del event[field]
    reason = rejection(encode(event))
    assert "missing" in reason and field in reason


@pytest.mark.parametrize("changes, fragments", [
    ({"amount": -5.0}, ["amount", "> 0"]),
    ({"amount": 0}, ["amount", "> 0"]),
    ({"amount": 0.0}, ["amount", "> 0"]),
    ({"amount": "12.50"}, ["amount", "str"]),
    ({"amount": None}, ["amount", "null"]),
    ({"amount": True}, ["amount", "bool"]),
    ({"customer_id": [1, 2]}, ["customer_id", "array"]),
    ({"customer_id": {"id": 1}}, ["customer_id", "object"]),
    ({"customer_id": None}, ["customer_id", "null"]),
    ({"terminal_id": 1.5}, ["terminal_id", "float"]),
    ({"transaction_id": False}, ["transaction_id", "bool"]),
    ({"timestamp": 1.5e12}, ["timestamp"]),
    ({"timestamp": None}, ["timestamp", "null"]),
    ({"currency": 978}, ["currency"]),
])
def test_wrong_types_and_values_name_the_field(changes: dict, fragments: list[str]) -> None:
    reason = rejection(encode(tx(**changes)))
    for fragment in fragments:
        assert fragment in reason, reason


def test_amount_overflowing_to_infinity() -> None:
    raw = encode(tx()).replace(b"12.34", b"1e400")
    assert "amount" in rejection(raw)


def test_no_value_at_all() -> None:
    assert rejection(None) == "empty message (no value)"


def test_oversized_payload() -> None:
    raw = encode(tx(note="x" * 200))
    reason = rejection(raw, max_bytes=100)
    assert f"{len(raw)} bytes" in reason and "100-byte limit" in reason


def test_oversized_is_checked_before_parsing() -> None:
    reason = rejection(b"x" * 101, max_bytes=100)
    assert "exceeds" in reason and "JSON" not in reason


@pytest.mark.parametrize("timestamp, fragment", [
    ("2018-04-01T10:00:00", "timestamp has no time zone"),
    ("2018-04-01", "timestamp has no time zone"),
    ("yesterday", "timestamp is not RFC 3339"),
    ("", "timestamp is not RFC 3339"),
    (TS_MS // 1000, "timestamp is outside 2000..2100"),  # seconds, not milliseconds
    (TS_MS * 1000, "timestamp is outside 2000..2100"),  # microseconds
    (MIN_TS_MS - 1, "timestamp is outside 2000..2100"),
    (MAX_TS_MS + 1, "timestamp is outside 2000..2100"),
    (-TS_MS, "timestamp is outside 2000..2100"),
    ("1999-12-31T23:59:59Z", "timestamp is outside 2000..2100"),
])
def test_bad_timestamps(timestamp: Any, fragment: str) -> None:
    assert fragment in rejection(encode(tx(timestamp=timestamp)))


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
def test_empty_id(field: str) -> None:
    reason = rejection(encode(tx(**{field: ""})))
    assert reason == f"{field} must be 1..{MAX_ID_LENGTH} characters"


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
def test_id_over_128_characters(field: str) -> None:
    reason = rejection(encode(tx(**{field: "y" * (MAX_ID_LENGTH + 1)})))
    assert reason == f"{field} must be 1..{MAX_ID_LENGTH} characters"


def test_huge_integer_id_is_rejected_by_length() -> None:
    reason = rejection(encode(tx(customer_id=int("9" * 129))))
    assert "customer_id" in reason


def test_rejected_reasons_are_single_lines() -> None:
    for raw in (b"not json", encode(tx(amount="1")), encode(tx(timestamp="x"))):
        assert "\n" not in rejection(raw)


# --- labels ----------------------------------------------------------------------------


def label(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": 5,
        "customer_id": "c-1",
        "terminal_id": 3,
        "timestamp": "2018-04-01T10:00:00Z",
        "label_time": TS_MS + 3_600_000,
        "is_fraud": True,
    }
    event.update(changes)
    return event


def label_rejection(raw: bytes | None, max_bytes: int = LIMIT) -> str:
    with pytest.raises(Rejected) as caught:
        decode_label(raw, max_bytes)
    return caught.value.reason


def test_valid_label() -> None:
    parsed, ts, label_ts = decode_label(encode(label(source="chargeback")), LIMIT)
    assert ts == TS_MS and label_ts == TS_MS + 3_600_000
    assert parsed.is_fraud is True
    assert (parsed.transaction_id, parsed.customer_id, parsed.terminal_id) == ("5", "c-1", "3")


def test_label_not_fraud() -> None:
    parsed, _, _ = decode_label(encode(label(is_fraud=False)), LIMIT)
    assert parsed.is_fraud is False


@pytest.mark.parametrize("raw, fragments", [
    (None, ["no value"]),
    (b"{", ["not valid JSON"]),
    (encode(label(is_fraud="yes")), ["is_fraud", "bool"]),
    (encode(label(is_fraud=1)), ["is_fraud", "bool"]),
    (encode({k: v for k, v in label().items() if k != "is_fraud"}), ["missing", "is_fraud"]),
    (encode({k: v for k, v in label().items() if k != "label_time"}),
     ["missing", "label_time"]),
    (encode(label(label_time="2018-04-01T11:00:00")), ["label_time has no time zone"]),
    (encode(label(label_time=1_522_580_400)), ["label_time is outside 2000..2100"]),
    (encode(label(timestamp="soon")), ["timestamp is not RFC 3339"]),
    (encode(label(customer_id="")), ["customer_id must be 1..128"]),
    (encode(label(terminal_id=[3])), ["terminal_id", "array"]),
])
def test_label_rejections(raw: bytes | None, fragments: list[str]) -> None:
    reason = label_rejection(raw)
    for fragment in fragments:
        assert fragment in reason, reason


def test_oversized_label() -> None:
    raw = encode(label())
    reason = label_rejection(raw, max_bytes=len(raw) - 1)
    assert reason.startswith(f"label of {len(raw)} bytes exceeds")


# --- amount bound ------------------------------------------------------------------------


def test_amount_bound_is_inclusive() -> None:
    assert MAX_AMOUNT == 1e9
    event, _ = decode_transaction(encode(tx(amount=MAX_AMOUNT)), LIMIT)
    assert event.amount == MAX_AMOUNT
    reason = rejection(encode(tx(amount=1_000_000_000.01)))
    assert reason == "amount exceeds 1e+09"


# --- event time bounds -------------------------------------------------------------------

NOW_MS = 1_700_000_000_000
DAY_MS = 86_400_000


def time_rejection(bounds: EventTimeBounds, ts_ms: int, field: str = "timestamp") -> str:
    with pytest.raises(Rejected) as caught:
        bounds.check(ts_ms, NOW_MS, field)
    return caught.value.reason


def test_bounds_from_days_and_seconds() -> None:
    assert EventTimeBounds.of(90, 3600) == EventTimeBounds(90 * DAY_MS, 3_600_000)
    assert EventTimeBounds.of(0.5, 1.5) == EventTimeBounds(DAY_MS // 2, 1500)
    assert EventTimeBounds.of(90.0, 0) == EventTimeBounds(7_776_000_000, 0)


def test_event_times_just_inside_both_limits_are_accepted() -> None:
    bounds = EventTimeBounds.of(90, 3600)
    for ts in (NOW_MS - 90 * DAY_MS, NOW_MS - 90 * DAY_MS + 1, NOW_MS,
               NOW_MS + 3_600_000 - 1, NOW_MS + 3_600_000):
        bounds.check(ts, NOW_MS)  # no exception


def test_an_event_just_too_old_is_rejected_in_days() -> None:
    bounds = EventTimeBounds.of(90, 3600)
    reason = time_rejection(bounds, NOW_MS - 90 * DAY_MS - 1)
    assert reason == "timestamp is 90.0 days old, beyond the 90-day limit"
    reason = time_rejection(bounds, NOW_MS - 400 * DAY_MS - DAY_MS // 4)
    assert reason == "timestamp is 400.2 days old, beyond the 90-day limit"


def test_an_event_just_too_far_ahead_is_rejected_in_seconds() -> None:
    bounds = EventTimeBounds.of(90, 3600)
    reason = time_rejection(bounds, NOW_MS + 3_600_001)
    assert reason == "timestamp is 3600s in the future, beyond the 3600s limit"
    reason = time_rejection(bounds, NOW_MS + 36 * DAY_MS)
    assert reason == "timestamp is 3110400s in the future, beyond the 3600s limit"


def test_zero_lead_refuses_any_future_millisecond() -> None:
    bounds = EventTimeBounds.of(1.5, 0)
    bounds.check(NOW_MS, NOW_MS)
    assert "in the future" in time_rejection(bounds, NOW_MS + 1)
    assert "beyond the 0s limit" in time_rejection(bounds, NOW_MS + 1)
    assert "beyond the 1.5-day limit" in time_rejection(bounds, NOW_MS - 2 * DAY_MS)


def test_time_rejections_name_the_field() -> None:
    bounds = EventTimeBounds.of(1, 60)
    assert time_rejection(bounds, NOW_MS - 2 * DAY_MS, "label_time").startswith(
        "label_time is 2.0 days old")
    assert time_rejection(bounds, NOW_MS + 61_000, "label_time").startswith(
        "label_time is 61s in the future")
