"""stream.batch_decode decodes a poll's values exactly as stream.events.decode_transaction
(the definition, one message at a time) and EventTimeBounds do: the same events accepted
with the same fields, the same ones rejected with the same reasons, in order, on the
hostile corpus and on random batches mixing valid and invalid events."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.stream import batch_decode
from fraudstream.stream.batch_decode import DecodedTransactions, decode_transactions
from fraudstream.stream.events import EventTimeBounds
from tests.hostile_corpus import corpus, event

MAX_BYTES, MAX_DEPTH = 64 * 1024, 32
BOUNDS = EventTimeBounds.of(30, 300)


def definition(values: list[bytes | None], now_ms: int) -> DecodedTransactions:
    """decode_transaction and the event-time bounds, message by message."""
    return batch_decode._decode_each(values, MAX_BYTES, MAX_DEPTH, BOUNDS, now_ms)


def test_the_hostile_corpus_decodes_as_the_definition_says() -> None:
    now_ms = int(time.time() * 1000)
    values = [case.value for case in corpus()]
    assert decode_transactions(values, MAX_BYTES, MAX_DEPTH, BOUNDS, now_ms) == \
        definition(values, now_ms)
    for value in values:  # and each alone, as a batch of one
        assert decode_transactions([value], MAX_BYTES, MAX_DEPTH, BOUNDS, now_ms) == \
            definition([value], now_ms)


NOW = 1_800_000_000_000
valid = st.builds(
    lambda i, c, t, ts, amount, rfc: json.dumps(event(
        i, NOW, customer_id=c, terminal_id=t,
        timestamp=(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts / 1000)) if rfc
                   else ts), amount=amount)).encode(),
    st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 10**6)),
    st.one_of(st.text(min_size=0, max_size=4), st.integers(-5, 10**6)),
    st.sampled_from(["t1", "t2", 7]),
    st.integers(NOW - 40 * 86_400_000, NOW + 600_000),
    st.one_of(st.floats(min_value=0.01, max_value=2e9), st.just(-1.0)),
    st.booleans())
junk = st.one_of(st.none(), st.binary(max_size=30), st.just(b"{}"),
                 st.just(b'{"transaction_id": "1"}{'), st.just(b"[" * 40 + b"]" * 40))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(valid, valid, valid, junk), max_size=12))
def test_random_batches_decode_as_the_definition_says(values: list[bytes | None]) -> None:
    assert decode_transactions(values, MAX_BYTES, MAX_DEPTH, BOUNDS, NOW) == \
        definition(values, NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(valid, min_size=1, max_size=12))
def test_whatever_the_fast_path_vouches_for_is_what_the_definition_says(
        values: list[bytes | None]) -> None:
    fast = batch_decode._decode_fast(values, MAX_BYTES, MAX_DEPTH, BOUNDS, NOW)
    if fast is not None:
        assert fast == definition(values, NOW)
    else:  # it left the batch to the definition: an event is refused, or has an id
        decoded = definition(values, NOW)  # that is not ASCII (its encoding is checked)
        assert decoded.rejected or not "".join(
            decoded.transaction_ids + decoded.customer_ids + decoded.terminal_ids).isascii()


def test_a_clean_batch_of_int_ids_and_rfc3339_times_takes_the_fast_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = [json.dumps({**event("x", NOW), "transaction_id": i, "customer_id": i * 7,
                          "timestamp": "2027-01-15T08:00:00+01:00"}).encode()
              for i in range(1, 5)]
    expected = definition(values, NOW)

    def refuse(*_: object) -> DecodedTransactions:
        raise AssertionError("the batch went through the definition, one at a time")

    monkeypatch.setattr(batch_decode, "_decode_each", refuse)
    decoded = decode_transactions(values, MAX_BYTES, MAX_DEPTH, BOUNDS, NOW)
    assert decoded == expected and decoded.customer_ids == ["7", "14", "21", "28"]
