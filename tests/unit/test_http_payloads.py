"""Request bodies: the stream's decoder and checks for every transaction, each fault
reported with where it is and why."""

from __future__ import annotations

import msgspec
import pytest

from fraudstream.stream.events import EventTimeBounds
from fraudstream.stream.http.payloads import (
    InvalidRequest,
    Limits,
    Problem,
    parse_csv,
    parse_instances,
    parse_score_body,
)

NOW = 1_764_072_000_000  # 2025-11-25T12:00:00Z
LIMITS = Limits(max_batch=3, max_event_bytes=16_384,
                bounds=EventTimeBounds.of(max_age_days=90, max_lead_s=3600))


def tx(tx_id: str = "1", **changes: object) -> dict[str, object]:
    event: dict[str, object] = {"transaction_id": tx_id, "timestamp": NOW - 60_000,
                                "customer_id": "c-1", "terminal_id": "t-1", "amount": 12.5}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def body(value: object) -> bytes:
    return msgspec.json.encode(value)


def problems(call, *args: object) -> list[Problem]:
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    return caught.value.problems


def test_one_transaction_is_not_a_batch() -> None:
    parsed = parse_score_body(body(tx(customer_id=7)), LIMITS, NOW)
    assert not parsed.is_batch and len(parsed) == 1
    assert parsed.transactions[0].customer_id == "7", "ids are normalised as in the stream"
    assert parsed.timestamps_ms == [NOW - 60_000]


def test_a_batch_keeps_its_order_and_accepts_rfc3339() -> None:
    items = [tx("a"), tx("b", timestamp="2025-11-25T11:00:00+00:00"), tx("c")]
    parsed = parse_score_body(body({"transactions": items}), LIMITS, NOW)
    assert parsed.is_batch
    assert [t.transaction_id for t in parsed.transactions] == ["a", "b", "c"]
    assert parsed.timestamps_ms[1] == NOW - 3_600_000


def test_every_fault_of_a_batch_is_reported_with_its_place() -> None:
    items = [tx("ok"), tx("neg", amount=-3), tx("", terminal_id=None)]
    found = problems(parse_score_body, body({"transactions": items}), LIMITS, NOW)
    assert [p.loc for p in found] == [("body", "transactions", 1, "amount"),
                                      ("body", "transactions", 2, "terminal_id")]
    assert "Expected `float` > 0.0" in found[0].msg
    assert "missing required field `terminal_id`" in found[1].msg


@pytest.mark.parametrize("changes, field, fragment", [
    ({"amount": "12.50"}, "amount", "Expected `float`, got `str`"),
    ({"amount": 2e9}, "amount", "amount exceeds 1e+09"),
    ({"customer_id": "x" * 129}, "customer_id", "customer_id must be 1..128 characters"),
    ({"customer_id": [1]}, "customer_id", "Expected `int | str`, got `array`"),
    ({"timestamp": "yesterday"}, "timestamp", "not RFC 3339"),
    ({"timestamp": "2025-11-25T11:00:00"}, "timestamp", "has no time zone"),
    ({"timestamp": 1_700}, "timestamp", "outside 2000..2100"),
    ({"timestamp": NOW - 100 * 86_400_000}, "timestamp", "beyond the 90-day limit"),
    ({"timestamp": NOW + 2 * 3_600_000}, "timestamp", "beyond the 3600s limit"),
    ({"currency": 5}, "currency", "Expected `str | null`, got `int`"),
])
def test_the_stream_rules_apply_and_name_the_field(changes: dict[str, object], field: str,
                                                   fragment: str) -> None:
    found = problems(parse_score_body, body(tx(**changes)), LIMITS, NOW)
    assert len(found) == 1
    assert found[0].loc == ("body", field)
    assert fragment in found[0].msg


@pytest.mark.parametrize("raw, fragment", [
    (b"{nope", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"transactions": {}}', "expected an array of transactions"),
    (b'{"transactions": []}', "at least 1 transaction"),
])
def test_the_shape_of_the_body_is_checked(raw: bytes, fragment: str) -> None:
    found = problems(parse_score_body, raw, LIMITS, NOW)
    assert len(found) == 1 and fragment in found[0].msg
    assert found[0].loc[0] == "body"


def test_a_batch_over_the_limit_is_refused_before_decoding() -> None:
    found = problems(parse_score_body, body({"transactions": [tx()] * 4}), LIMITS, NOW)
    assert found == [Problem(("body", "transactions"),
                             "at most 3 transactions per request, got 4")]


def test_an_oversized_transaction_is_refused_as_the_stream_does() -> None:
    found = problems(parse_score_body, body({"transactions": [tx(note="x" * 20_000)]}),
                     LIMITS, NOW)
    assert found[0].loc == ("body", "transactions", 0)
    assert "exceeds the 16384-byte limit" in found[0].msg


def test_vertex_instances_in_and_parameters_ignored() -> None:
    parsed = parse_instances(body({"instances": [tx("a"), tx("b")],
                                   "parameters": {"x": 1}}), LIMITS, NOW)
    assert parsed.is_batch and [t.transaction_id for t in parsed.transactions] == ["a", "b"]
    found = problems(parse_instances, body({"transactions": [tx()]}), LIMITS, NOW)
    assert found == [Problem(("body", "instances"), "field required", "missing")]
    found = problems(parse_instances, body({"instances": [tx(amount=0)]}), LIMITS, NOW)
    assert found[0].loc == ("body", "instances", 0, "amount")


def test_csv_rows_in_column_order_with_optional_tail() -> None:
    text = f"1,{NOW - 1000},c1,t1,300\n2,2025-11-25T11:59:00Z,c2,t2,5.5,EUR,web,FR\n\n"
    parsed = parse_csv(text.encode(), LIMITS, NOW)
    first, second = parsed.transactions
    assert (first.transaction_id, first.amount, first.currency) == ("1", 300.0, None)
    assert (second.currency, second.channel, second.country) == ("EUR", "web", "FR")
    assert parsed.timestamps_ms == [NOW - 1000, NOW - 60_000]


def test_csv_with_a_header_in_any_order() -> None:
    text = f"transaction_id,amount,terminal_id,customer_id,timestamp\n9,1.25,t,c,{NOW}\n"
    parsed = parse_csv(text.encode(), LIMITS, NOW)
    assert parsed.transactions[0].amount == 1.25
    assert parsed.transactions[0].terminal_id == "t"


def test_csv_faults_name_the_row_and_field() -> None:
    text = f"1,{NOW},c1,t1,abc\n2,{NOW},c2\n3,{NOW},c3,t3,-1\n"
    found = problems(parse_csv, text.encode(), LIMITS, NOW)
    locs = sorted(p.loc for p in found)
    assert locs == [("body", 0, "amount"), ("body", 1), ("body", 2, "amount")]
    assert any("expected 5 to 8 columns, got 3" in p.msg for p in found)


@pytest.mark.parametrize("text, fragment", [
    ("transaction_id,amount,bogus\n1,2,3\n", "unknown column 'bogus'"),
    ("transaction_id,amount\n1,2\n", "missing column 'timestamp'"),
    ("transaction_id\n", "missing column"),
    ("\n\n", "no transaction rows"),
])
def test_csv_headers_are_checked(text: str, fragment: str) -> None:
    found = problems(parse_csv, text.encode(), LIMITS, NOW)
    assert any(fragment in p.msg for p in found), found


def test_csv_must_be_utf8_and_within_the_batch_limit() -> None:
    assert "not UTF-8" in problems(parse_csv, b"\xff\xfe", LIMITS, NOW)[0].msg
    rows = "".join(f"{i},{NOW},c,t,1\n" for i in range(4))
    assert "at most 3 rows" in problems(parse_csv, rows.encode(), LIMITS, NOW)[0].msg
