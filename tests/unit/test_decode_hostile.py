"""stream.events against hostile input: ``decode_transaction`` and ``decode_label`` return
an event or raise ``Rejected``, and nothing else, for every input (issue: one message
must never stop a worker).

Inputs stress the decoder where a C decoder or Python's conversions would break: nesting
up to 100,000 deep inside ignored and typed fields, strings up to 5 MB, every JSON number
edge, invalid UTF-8, byte order marks, duplicate keys, and keys of 0 bytes to 2 MB. The
size limit is set far above them here, so each input reaches the decoder; with the
default limit they are refused for their size first (also checked)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.stream.events import (
    DEFAULT_MAX_DEPTH,
    Rejected,
    decode_label,
    decode_transaction,
    nesting_depth,
)

NOW_MS = int(time.time() * 1000)
HUGE = 64 * 1024 * 1024  # no size limit in the way: every input reaches the decoder
VALID = {"transaction_id": "t1", "timestamp": NOW_MS, "customer_id": "c1",
         "terminal_id": "m1", "amount": 12.5}
LABEL = {"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1",
         "timestamp": NOW_MS, "label_time": NOW_MS, "is_fraud": True}
FIELDS = ["transaction_id", "timestamp", "customer_id", "terminal_id", "amount",
          "extra", "is_fraud", "label_time"]

NUMBER_EDGES = [
    "0", "-0", "0.0", "-0.0", "1e308", "1e309", "-1e309", "1e-400", "4.9e-324",
    "2.2250738585072014e-308", "1.7976931348623157e308", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "123456789012345678901234567890", "1" + "0" * 5000,
    "0." + "0" * 5000 + "1", "1e999999999999", "NaN", "Infinity", "-Infinity", "nan",
    "01", "-01", "1.", ".5", "+1", "0x10", "1e", "1e+", "-", "1_000", "1,5", "\u0661",
]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1",
                b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80", b"\xf8\xa1\xa1\xa1\xa1", b"\xc0\xaf"]
BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"]
ESCAPES = ["\\ud800", "\\udc00", "\\ud800\\ud800", "\\u0000", "\\uZZZZ", "\\x41", "\\"]


def _with(field: str, raw_value: bytes, base: dict[str, object] = VALID) -> bytes:
    """``base`` with ``field`` (replaced or added) set to the raw JSON ``raw_value``."""
    others = [json.dumps(k).encode() + b":" + json.dumps(v).encode()
              for k, v in base.items() if k != field]
    return b"{" + b",".join([*others, json.dumps(field).encode() + b":" + raw_value]) + b"}"


def _nested(depth: int, opener: bytes) -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    inner = b"[" * depth + b"]" * depth if opener == b"[" else \
        b'{"a":' * depth + b"1" + closer * depth
    return inner


deep = st.builds(lambda field, depth, opener: _with(field, _nested(depth, opener)),
                 st.sampled_from(FIELDS), st.integers(1, 100_000),
                 st.sampled_from([b"[", b"{"]))
deep_top = st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 100_000))
long_strings = st.builds(lambda field, n, char: _with(field, json.dumps(char * n).encode()),
                         st.sampled_from(FIELDS), st.integers(0, 5_000_000),
                         st.sampled_from(["x", "é", "\u20ac", "\U0001f600", "\\", "\""]))
numbers = st.builds(lambda field, number: _with(field, number.encode()),
                    st.sampled_from(FIELDS), st.sampled_from(NUMBER_EDGES))
bad_utf8 = st.builds(lambda field, junk, where: _with(field, b'"' + (junk if where else b"a")
                                                      + b'"' + (b"" if where else junk)),
                     st.sampled_from(FIELDS), st.sampled_from(INVALID_UTF8), st.booleans())
with_bom = st.builds(lambda bom, body: bom + body, st.sampled_from(BOMS),
                     st.sampled_from([json.dumps(VALID).encode(), json.dumps(LABEL).encode(),
                                      json.dumps(VALID).encode("utf-16")]))
duplicates = st.builds(
    lambda field, first, second: json.dumps(VALID).encode()[:-1]
    + b"," + json.dumps(field).encode() + b":" + first.encode()
    + b"," + json.dumps(field).encode() + b":" + second.encode() + b"}",
    st.sampled_from(FIELDS), st.sampled_from(['"x"', "1", "null", "[]", "1e999", '"t2"']),
    st.sampled_from(['"y"', "2", "true", "{}", "-1", '"c2"']))
long_keys = st.builds(lambda n, char: json.dumps(VALID).encode()[:-1] + b","
                      + json.dumps(char * n).encode() + b":1}",
                      st.integers(0, 2 * 1024 * 1024), st.sampled_from(["k", "\u00e9", "\\"]))
escapes = st.builds(lambda field, escape: _with(field, b'"' + escape.encode() + b'"'),
                    st.sampled_from(FIELDS), st.sampled_from(ESCAPES))
raw_bytes = st.binary(max_size=4096)
hostile = st.one_of(deep, deep_top, long_strings, numbers, bad_utf8, with_bom, duplicates,
                    long_keys, escapes, raw_bytes)


def _outcome(decode: object, raw: bytes, max_bytes: int) -> str:
    try:
        decode(raw, max_bytes)
    except Rejected as exc:
        assert exc.reason, "a rejection always says why"
        return "rejected"
    return "decoded"


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=hostile)
def test_decode_returns_an_event_or_rejects_whatever_the_bytes(raw: bytes) -> None:
    for decode in (decode_transaction, decode_label):
        _outcome(decode, raw, HUGE)
        _outcome(decode, raw, 16_384)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("depth", [DEFAULT_MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_beyond_the_limit_is_rejected_as_too_deeply_nested(field: str,
                                                                   depth: int) -> None:
    raw = _with(field, _nested(depth, b"["))
    with pytest.raises(Rejected, match="too deeply nested") as caught:
        decode_transaction(raw, HUGE)
    assert caught.value.kind == "depth"


def test_nesting_within_the_limit_in_an_ignored_field_is_decoded() -> None:
    event, _ = decode_transaction(_with("extra", _nested(DEFAULT_MAX_DEPTH - 1, b"{")), HUGE)
    assert event.transaction_id == "t1"


def test_the_depth_limit_is_a_parameter() -> None:
    raw = _with("extra", _nested(5, b"["))
    decode_transaction(raw, HUGE, max_depth=6)
    with pytest.raises(Rejected, match="too deeply nested"):
        decode_transaction(raw, HUGE, max_depth=5)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth(b'{"a":"[[[{{{\\"[[[","b":[{}]}') == 3
    event, _ = decode_transaction(_with("extra", json.dumps("[" * 10_000).encode()), HUGE)
    assert event.customer_id == "c1"


def test_an_id_that_is_not_valid_unicode_is_rejected_with_its_field() -> None:
    with pytest.raises(Rejected) as caught:
        decode_transaction(_with("customer_id", b'"\\ud800"'), HUGE)
    assert caught.value.field in ("customer_id", None)


def test_an_integer_id_too_long_to_print_is_rejected() -> None:
    with pytest.raises(Rejected):
        decode_transaction(_with("transaction_id", b"1" * 5000), HUGE)


def test_the_size_limit_comes_first_and_says_size() -> None:
    with pytest.raises(Rejected, match="exceeds the 16384-byte limit") as caught:
        decode_transaction(_with("extra", json.dumps("x" * 20_000).encode()), 16_384)
    assert caught.value.kind == "size"


EXTREMES = {
    "depth 100,000 in an ignored field": _with("extra", _nested(100_000, b"{")),
    "depth 100,000 in a typed field": _with("amount", _nested(100_000, b"[")),
    "depth 100,000 at the top": b"[" * 100_000 + b"]" * 100_000,
    "a 5 MB string in an ignored field": _with("extra", json.dumps("x" * 5_000_000).encode()),
    "a 5 MB id": _with("customer_id", json.dumps("\u20ac" * 1_700_000).encode()),
    "a 2 MB key": json.dumps(VALID).encode()[:-1] + b"," + json.dumps("k" * 2 * 1024 * 1024)
    .encode() + b":1}",
    "an empty key": json.dumps(VALID).encode()[:-1] + b',"":1}',
    "a 5,000-digit amount": _with("amount", b"9" * 5000),
    "a 5,000-digit timestamp": _with("timestamp", b"9" * 5000),
    "invalid UTF-8 in an id": _with("terminal_id", b'"\xff\xfe"'),
    "a UTF-8 byte order mark": b"\xef\xbb\xbf" + json.dumps(VALID).encode(),
    "UTF-16 with its mark": json.dumps(VALID).encode("utf-16"),
    "duplicate amount keys": json.dumps(VALID).encode()[:-1] + b',"amount":"x"}',
}


@pytest.mark.parametrize("raw", list(EXTREMES.values()), ids=list(EXTREMES))
def test_extremes_decode_or_reject(raw: bytes) -> None:
    for decode in (decode_transaction, decode_label):
        _outcome(decode, raw, HUGE)
        _outcome(decode, raw, 16_384)
