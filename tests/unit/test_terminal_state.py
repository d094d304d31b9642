"""features.terminal_state: packed layout, ring of day buckets, marks and fraud ids."""

from __future__ import annotations

import struct

import pytest

from fraudstream.features.definitions import TERMINAL_RING_DAYS
from fraudstream.features.terminal_state import (
    COUNT_MAX,
    VERSION,
    TerminalState,
    TerminalStateError,
    decode,
    encode,
    fraud_id,
)

DAY0 = 17_622  # 2018-04-01 in days since the epoch; 17_622 % 39 == 33
RING = TERMINAL_RING_DAYS
OLDEST = DAY0 - RING + 1  # the oldest day held by a ring whose last day is DAY0


def slot(day: int) -> int:
    return day % RING


def golden_state() -> TerminalState:
    state = TerminalState(last_day=DAY0, marks={3: 2**32 + 1, 0: 5},
                          fraud_ids={0x0123_4567_89AB_CDEF: DAY0})
    state.counts[slot(DAY0 - 1)] = 1  # slot 32
    state.counts[slot(DAY0)] = 3  # slot 33
    state.frauds[slot(DAY0)] = 1
    return state


# Worked out by hand from the header struct and the numpy dtypes (packed, little endian).
GOLDEN = bytes.fromhex(
    "02"  # version u1 = 2
    "d6440000"  # last_day <i4 = 17_622 = 0x44d6
    "0200"  # number of partition marks <u2 = 2
    "01000000"  # number of fraud ids <u4 = 1
    # counts <u4 x 39: slot 32 = 1, slot 33 = 3
    + "00000000" * 32 + "01000000" + "03000000" + "00000000" * 5
    # frauds <u4 x 39: slot 33 = 1
    + "00000000" * 33 + "01000000" + "00000000" * 5
    # marks (partition <u2, offset <i8), sorted by partition
    + "0000" "0500000000000000"  # partition 0, offset 5
    + "0300" "0100000001000000"  # partition 3, offset 2**32 + 1
    # fraud ids (day <i4, id <u8)
    + "d6440000" "efcdab8967452301"  # day 17_622, id 0x0123456789abcdef
)


def filled(last_day: int = DAY0) -> TerminalState:
    """One transaction on each of the RING days last_day-RING+1 .. last_day (partition 0)."""
    state = TerminalState()
    for k, day in enumerate(range(last_day - RING + 1, last_day + 1)):
        state.add_transaction(day, 0, k)
    return state


# --- layout -----------------------------------------------------------------------------


def test_golden_bytes() -> None:
    assert RING == 39 and slot(DAY0 - 1) == 32 and slot(DAY0) == 33
    assert len(GOLDEN) == 11 + 2 * 39 * 4 + 2 * 10 + 12 == 355
    assert encode(golden_state()) == GOLDEN


def test_golden_bytes_decode() -> None:
    state = decode(GOLDEN)
    assert state == golden_state()
    assert list(state.marks) == [0, 3]
    assert type(state.counts[33]) is int and type(state.marks[3]) is int
    assert all(type(k) is int and type(d) is int for k, d in state.fraud_ids.items())


def test_layout_matches_struct_packing() -> None:
    state = golden_state()
    packed = struct.pack("<BiHI39I39IHqHqiQ", VERSION, state.last_day, 2, 1,
                         *state.counts, *state.frauds, 0, 5, 3, 2**32 + 1,
                         DAY0, 0x0123_4567_89AB_CDEF)
    assert encode(state) == packed


def test_round_trip_with_marks_and_fraud_ids() -> None:
    state = TerminalState(
        last_day=-3, counts=[COUNT_MAX - i for i in range(RING)],
        frauds=list(range(RING)),
        marks={0: 0, 7: 2**63 - 1, 65_535: 12, 2: -1},
        fraud_ids={0: -3, 2**64 - 1: -39, fraud_id("tx-9"): -20},
    )
    back = decode(encode(state))
    assert back == state
    assert back.marks == {0: 0, 2: -1, 7: 2**63 - 1, 65_535: 12}
    assert back.fraud_ids[2**64 - 1] == -39
    assert encode(back) == encode(state)


def test_round_trip_of_a_state_built_by_adds() -> None:
    state = TerminalState()
    state.add_transaction(DAY0, 1, 40)
    state.add_transaction(DAY0, 0, 7)
    state.add_transaction(DAY0 + 2, 1, 41)
    assert state.add_fraud(DAY0, "tx-a") == "applied"
    back = decode(encode(state))
    assert back == state
    assert back.has_applied(1, 41) and not back.has_applied(0, 8)
    assert back.add_fraud(DAY0, "tx-a") == "duplicate"


def test_more_fraud_ids_than_a_u16_can_count_round_trip() -> None:
    n = 2**16 + 1
    state = TerminalState(last_day=DAY0, fraud_ids={k: DAY0 - k % RING for k in range(n)})
    raw = encode(state)
    assert raw[7:11] == n.to_bytes(4, "little")  # the <u4 number of fraud ids
    assert len(raw) == 11 + 2 * 39 * 4 + n * 12
    assert decode(raw) == state


def test_empty_state_round_trips_and_decode_none_is_new() -> None:
    assert decode(None) == TerminalState()
    assert decode(None).is_new
    raw = encode(TerminalState())
    assert len(raw) == 11 + 2 * 39 * 4
    assert decode(raw) == TerminalState() and decode(raw).is_new


def test_fraud_id_is_a_stable_64_bit_hash() -> None:
    # Stored ids must never change between versions: pinned values.
    assert fraud_id("tx-1") == 0x6B3A_C106_05B0_4A7A
    assert fraud_id("tx-1") != fraud_id("tx-2")
    assert 0 <= fraud_id("tx-2") < 2**64


@pytest.mark.parametrize("version", [0, 1, 3, 255])
def test_decode_rejects_wrong_version(version: int) -> None:
    with pytest.raises(TerminalStateError, match="version"):
        decode(bytes([version]) + GOLDEN[1:])


@pytest.mark.parametrize("raw", [
    b"",
    GOLDEN[:10],  # shorter than the header
    GOLDEN[:11 + 2 * 39 * 4 - 1],  # ring cut short
    GOLDEN[:-1],  # last fraud id cut short
    GOLDEN + b"\x00",  # one byte too many
    GOLDEN[:5] + b"\x03\x00" + GOLDEN[7:],  # header claims a third mark
    GOLDEN[:7] + b"\x00\x00\x00\x00" + GOLDEN[11:],  # header claims no fraud ids
    GOLDEN[:7] + b"\x01\x00\x01\x00" + GOLDEN[11:],  # header claims 65_537 fraud ids
])
def test_decode_rejects_wrong_length(raw: bytes) -> None:
    with pytest.raises(TerminalStateError, match="bytes"):
        decode(raw)


def test_terminal_state_error_is_a_value_error() -> None:
    assert issubclass(TerminalStateError, ValueError)


# --- transactions and the ring ------------------------------------------------------------


def test_first_transaction_of_a_new_terminal() -> None:
    state = TerminalState()
    assert state.is_new and not state.holds(DAY0)
    assert state.window_totals(DAY0 - 100, DAY0 + 100) == (0, 0)
    state.add_transaction(DAY0, 2, 17)
    assert not state.is_new
    assert state.last_day == DAY0 and state.marks == {2: 17}
    assert state.counts[slot(DAY0)] == 1 and sum(state.counts) == 1
    assert state.holds(DAY0) and state.holds(OLDEST)
    assert not state.holds(OLDEST - 1) and not state.holds(DAY0 + 1)


def test_window_totals_cover_the_requested_days_held_in_the_ring() -> None:
    state = filled()
    assert state.add_fraud(DAY0 - 10, "f1") == "applied"
    assert state.add_fraud(DAY0 - 3, "f2") == "applied"
    assert state.window_totals(OLDEST, DAY0) == (RING, 2)
    assert state.window_totals(DAY0 - 10, DAY0 - 3) == (8, 2)
    assert state.window_totals(DAY0 - 9, DAY0 - 4) == (6, 0)
    assert state.window_totals(DAY0 - 3, DAY0 - 3) == (1, 1)
    # Days outside the ring (before it or after last_day) hold nothing.
    assert state.window_totals(DAY0 - 100, OLDEST - 1) == (0, 0)
    assert state.window_totals(DAY0 + 1, DAY0 + 30) == (0, 0)
    assert state.window_totals(DAY0 - 100, DAY0 + 100) == (RING, 2)
    assert state.window_totals(DAY0, DAY0 - 1) == (0, 0)


def test_rolling_forward_clears_the_days_that_left_and_prunes_their_fraud_ids() -> None:
    state = filled()
    assert state.add_fraud(OLDEST, "oldest") == "applied"
    assert state.add_fraud(OLDEST + 2, "leaves") == "applied"
    assert state.add_fraud(OLDEST + 3, "stays") == "applied"
    state.add_transaction(DAY0 + 3, 1, 0)
    assert state.last_day == DAY0 + 3
    # Days OLDEST .. OLDEST+2 shared their slots with DAY0+1 .. DAY0+3.
    assert slot(OLDEST) == slot(DAY0 + 1) and slot(OLDEST + 2) == slot(DAY0 + 3)
    assert state.counts[slot(DAY0 + 1)] == 0 and state.frauds[slot(DAY0 + 1)] == 0
    assert state.counts[slot(DAY0 + 2)] == 0 and state.frauds[slot(DAY0 + 2)] == 0
    assert state.counts[slot(DAY0 + 3)] == 1 and state.frauds[slot(DAY0 + 3)] == 0
    assert state.window_totals(DAY0 - 100, DAY0 + 3) == (RING - 3 + 1, 1)
    assert state.window_totals(OLDEST + 3, OLDEST + 3) == (1, 1)
    assert state.fraud_ids == {fraud_id("stays"): OLDEST + 3}
    assert not state.holds(OLDEST + 2) and state.holds(OLDEST + 3)
    # A pruned id's day is out of the ring: it is too old, never counted again.
    assert state.add_fraud(OLDEST + 2, "leaves") == "too_old"
    assert decode(encode(state)) == state


def test_rolling_forward_one_day_clears_exactly_one_slot() -> None:
    state = filled()
    assert state.add_fraud(OLDEST, "oldest") == "applied"
    state.add_transaction(DAY0 + 1, 0, 100)
    assert state.counts[slot(DAY0 + 1)] == 1  # the old day's count of 1 was replaced
    assert sum(state.counts) == RING and sum(state.frauds) == 0
    assert state.fraud_ids == {}


@pytest.mark.parametrize("jump", [RING, RING + 1, 1000])
def test_jump_of_a_ring_or_more_clears_everything(jump: int) -> None:
    state = filled()
    assert state.add_fraud(DAY0, "newest") == "applied"
    state.add_transaction(DAY0 + jump, 0, 100)
    assert sum(state.counts) == 1 and state.counts[slot(DAY0 + jump)] == 1
    assert sum(state.frauds) == 0 and state.fraud_ids == {}
    assert state.window_totals(DAY0 - 100, DAY0 + jump) == (1, 0)


def test_older_days_in_the_ring_are_counted_without_moving_it() -> None:
    state = filled()
    state.add_transaction(OLDEST, 1, 0)
    state.add_transaction(DAY0 - 5, 1, 1)
    assert state.last_day == DAY0
    assert state.counts[slot(OLDEST)] == 2 and state.counts[slot(DAY0 - 5)] == 2
    assert sum(state.counts) == RING + 2


def test_a_day_too_old_for_the_ring_is_not_counted_but_its_offset_is_marked() -> None:
    state = filled()
    before = list(state.counts)
    state.add_transaction(OLDEST - 1, 1, 9)
    assert state.counts == before and state.last_day == DAY0
    assert state.has_applied(1, 9)


def test_counts_saturate() -> None:
    state = TerminalState()
    state.add_transaction(DAY0, 0, 0)
    state.counts[slot(DAY0)] = COUNT_MAX - 1
    state.add_transaction(DAY0, 0, 1)
    state.add_transaction(DAY0, 0, 2)
    assert state.counts[slot(DAY0)] == COUNT_MAX == 2**32 - 1
    assert decode(encode(state)).counts[slot(DAY0)] == COUNT_MAX


def test_has_applied_is_per_partition() -> None:
    state = TerminalState()
    state.add_transaction(DAY0, 0, 10)
    state.add_transaction(DAY0, 1, 3)
    assert state.marks == {0: 10, 1: 3}
    assert state.has_applied(0, 10) and state.has_applied(0, 0)
    assert not state.has_applied(0, 11)
    assert state.has_applied(1, 3) and not state.has_applied(1, 4)
    assert not state.has_applied(2, 0)  # a partition never seen
    # A lower offset (not possible in one partition, but harmless) never lowers the mark.
    state.add_transaction(DAY0, 0, 4)
    assert state.marks == {0: 10, 1: 3}
    assert decode(encode(state)).has_applied(1, 3)
    assert not decode(encode(state)).has_applied(1, 4)


# --- frauds -------------------------------------------------------------------------------


def two_day_terminal() -> TerminalState:
    """Two transactions on DAY0 - 1, one on DAY0."""
    state = TerminalState()
    state.add_transaction(DAY0 - 1, 0, 0)
    state.add_transaction(DAY0 - 1, 0, 1)
    state.add_transaction(DAY0, 0, 2)
    return state


def test_add_fraud_applied() -> None:
    state = two_day_terminal()
    assert state.add_fraud(DAY0 - 1, "t0") == "applied"
    assert state.frauds[slot(DAY0 - 1)] == 1 and sum(state.frauds) == 1
    assert state.fraud_ids == {fraud_id("t0"): DAY0 - 1}
    assert state.window_totals(DAY0 - 1, DAY0 - 1) == (2, 1)


def test_add_fraud_duplicate_counts_once() -> None:
    state = two_day_terminal()
    assert state.add_fraud(DAY0 - 1, "t0") == "applied"
    assert state.add_fraud(DAY0 - 1, "t0") == "duplicate"
    # The same id is a duplicate whatever day the label claims.
    assert state.add_fraud(DAY0, "t0") == "duplicate"
    assert sum(state.frauds) == 1 and len(state.fraud_ids) == 1


def test_add_fraud_on_a_terminal_never_seen_is_unknown() -> None:
    state = TerminalState()
    assert state.add_fraud(DAY0, "t0") == "unknown"
    assert state == TerminalState()


def test_add_fraud_after_the_last_day_is_unknown() -> None:
    state = two_day_terminal()
    before = encode(state)
    assert state.add_fraud(DAY0 + 1, "t9") == "unknown"
    assert encode(state) == before


def test_more_frauds_than_transactions_that_day_is_unknown() -> None:
    state = two_day_terminal()
    assert state.add_fraud(DAY0, "t2") == "applied"
    assert state.add_fraud(DAY0, "t3") == "unknown"  # DAY0 had one transaction
    assert state.add_fraud(DAY0 - 1, "t0") == "applied"
    assert state.add_fraud(DAY0 - 1, "t1") == "applied"
    assert state.add_fraud(DAY0 - 1, "t4") == "unknown"
    assert state.window_totals(DAY0 - 1, DAY0) == (3, 3)
    assert fraud_id("t3") not in state.fraud_ids and fraud_id("t4") not in state.fraud_ids


def test_a_day_in_the_ring_without_transactions_is_unknown() -> None:
    state = two_day_terminal()
    assert state.add_fraud(DAY0 - 20, "t7") == "unknown"
    assert sum(state.frauds) == 0


def test_add_fraud_of_a_day_that_left_the_ring_is_too_old() -> None:
    state = filled()
    before = encode(state)
    assert state.add_fraud(OLDEST - 1, "late") == "too_old"
    assert state.add_fraud(DAY0 - 400, "later") == "too_old"
    assert encode(state) == before
    assert state.add_fraud(OLDEST, "oldest-held") == "applied"
