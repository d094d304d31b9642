"""features.customer_state: packed layout, ring of day buckets, saturation, replay guard."""

from __future__ import annotations

import struct

import pytest

from fraudstream.features.customer_state import (
    NO_GAP,
    NO_PARTITION,
    STATE_BYTES,
    VERSION,
    CustomerState,
    StateFormatError,
    decode,
    encode,
    encode_many,
)
from fraudstream.features.definitions import CENTS_MAX, COUNT_MAX, DAY_MS, GAP_CAP_MS, RING_DAYS

DAY0 = 17_622  # 2018-04-01 in days since the epoch; 17_622 % 30 == 12
TS0 = DAY0 * DAY_MS


def golden_state() -> CustomerState:
    state = CustomerState(partition=7, offset=123_456_789_012, last_day=DAY0,
                          last_ts=1_522_584_000_000, prev_gap=3_600_000)
    state.counts[12] = 2
    state.cents[12] = 12_345
    state.counts[11] = 1
    state.cents[11] = 999
    return state


# Worked out by hand from STATE_DTYPE (packed, little endian), one field per line.
GOLDEN = bytes.fromhex(
    "02"  # version u1 = 2
    "0700"  # partition <u2 = 7
    "141a99be1c000000"  # offset <i8 = 123_456_789_012 = 0x1c_be99_1a14
    "d6440000"  # last_day <i4 = 17_622 = 0x44d6
    "0016148162010000"  # last_ts <i8 = 1_522_584_000_000 = 0x162_8114_1600
    "80ee3600"  # prev_gap <u4 = 3_600_000 = 0x36ee80
    # counts u1 x 30: slot 11 = 1, slot 12 = 2
    "00000000000000000000"  # slots 0..9
    "00010200000000000000"  # slots 10..19
    "00000000000000000000"  # slots 20..29
    # cents <u4 x 30: slot 11 = 999 = 0x3e7, slot 12 = 12_345 = 0x3039
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000e70300003930000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
)


def test_golden_bytes() -> None:
    assert STATE_BYTES == 177 == len(GOLDEN)
    assert encode(golden_state()) == GOLDEN


def test_golden_bytes_decode() -> None:
    state = decode(GOLDEN)
    assert state == golden_state()
    assert type(state.counts[12]) is int and type(state.offset) is int


def test_layout_matches_struct_packing() -> None:
    state = golden_state()
    packed = struct.pack("<BHqiqI30B30I", VERSION, state.partition, state.offset,
                         state.last_day, state.last_ts, state.prev_gap,
                         *state.counts, *state.cents)
    assert encode(state) == packed


def test_round_trip_of_extreme_values() -> None:
    state = CustomerState(partition=0, offset=2**63 - 1, last_day=-5, last_ts=-(2**63),
                          prev_gap=NO_GAP, counts=[COUNT_MAX] * RING_DAYS,
                          cents=[CENTS_MAX - i for i in range(RING_DAYS)])
    assert decode(encode(state)) == state


def test_encode_many_matches_encode_one_by_one() -> None:
    first, second = golden_state(), CustomerState()
    second.add(DAY0, TS0, 500, 1, 9)
    blobs = encode_many([first, second])
    assert blobs == [encode(first), encode(second)]
    assert blobs[0] != blobs[1]
    assert encode_many([]) == []


def test_decode_none_is_a_new_state() -> None:
    state = decode(None)
    assert state.is_new
    assert state.partition == NO_PARTITION and state.offset == -1
    assert state.window_totals(DAY0, 30) == (0, 0)


@pytest.mark.parametrize("raw", [
    b"", GOLDEN[:-1], GOLDEN + b"\x00", b"\x01" * 10,
])
def test_decode_rejects_wrong_length(raw: bytes) -> None:
    with pytest.raises(StateFormatError, match=f"{len(raw)} bytes"):
        decode(raw)


@pytest.mark.parametrize("version", [0, 1, 3, 255])
def test_decode_rejects_wrong_version(version: int) -> None:
    raw = bytes([version]) + GOLDEN[1:]
    with pytest.raises(StateFormatError, match="version"):
        decode(raw)


def test_state_format_error_is_a_value_error() -> None:
    assert issubclass(StateFormatError, ValueError)


# --- applying transactions -----------------------------------------------------------------


def test_first_transaction_of_a_new_customer() -> None:
    state = CustomerState()
    assert state.add(DAY0, TS0 + 5, 1234, partition=2, offset=40) is True
    assert not state.is_new
    assert state.last_day == DAY0 and state.last_ts == TS0 + 5
    assert state.prev_gap == NO_GAP
    assert (state.partition, state.offset) == (2, 40)
    assert state.counts[DAY0 % RING_DAYS] == 1 and state.cents[DAY0 % RING_DAYS] == 1234
    assert sum(state.counts) == 1 and sum(state.cents) == 1234


def test_gap_is_clamped_at_zero_and_at_the_cap() -> None:
    state = CustomerState()
    state.add(DAY0, TS0 + 10_000, 1, 0, 0)
    state.add(DAY0, TS0 + 13_500, 1, 0, 1)
    assert state.prev_gap == 3_500
    state.add(DAY0, TS0 + 13_000, 1, 0, 2)  # a slightly late event
    assert state.prev_gap == 0
    state.add(DAY0 + 29, TS0 + 45 * DAY_MS, 1, 0, 3)
    assert state.prev_gap == GAP_CAP_MS


def full_ring(last_day: int) -> CustomerState:
    """A state holding one transaction of (day + 1) cents on each of the 30 last days."""
    state = CustomerState(partition=0, offset=100, last_day=last_day, last_ts=last_day * DAY_MS)
    for day in range(last_day - RING_DAYS + 1, last_day + 1):
        state.counts[day % RING_DAYS] = 1
        state.cents[day % RING_DAYS] = day + 1
    return state


def test_window_totals_of_a_full_ring() -> None:
    state = full_ring(DAY0)
    assert state.window_totals(DAY0, 1) == (1, DAY0 + 1)
    assert state.window_totals(DAY0, 7) == (7, sum(d + 1 for d in range(DAY0 - 6, DAY0 + 1)))
    assert state.window_totals(DAY0, 30) == (30, sum(d + 1 for d in range(DAY0 - 29, DAY0 + 1)))
    # Asking for an earlier day only sees the ring's days up to it.
    assert state.window_totals(DAY0 - 3, 7) == (7, sum(d + 1 for d in range(DAY0 - 9, DAY0 - 2)))
    # Asking for a later day sees nothing newer than last_day.
    assert state.window_totals(DAY0 + 2, 7) == (5, sum(d + 1 for d in range(DAY0 - 4, DAY0 + 1)))


def test_advancing_days_clears_only_the_buckets_skipped_over() -> None:
    state = full_ring(DAY0)
    assert state.add(DAY0 + 5, (DAY0 + 5) * DAY_MS, 7, 0, 101) is True
    assert state.last_day == DAY0 + 5
    for day in range(DAY0 + 1, DAY0 + 5):  # reused slots of days DAY0-29 .. DAY0-26
        assert state.counts[day % RING_DAYS] == 0
        assert state.cents[day % RING_DAYS] == 0
    assert state.counts[(DAY0 + 5) % RING_DAYS] == 1
    assert state.cents[(DAY0 + 5) % RING_DAYS] == 7
    for day in range(DAY0 - 24, DAY0 + 1):  # still inside the ring: untouched
        assert state.counts[day % RING_DAYS] == 1
        assert state.cents[day % RING_DAYS] == day + 1
    assert state.window_totals(DAY0 + 5, 30) == (
        26, 7 + sum(d + 1 for d in range(DAY0 - 24, DAY0 + 1)))
    assert state.window_totals(DAY0 + 5, 7) == (3, 7 + (DAY0 - 1 + 1) + (DAY0 + 1))


def test_advancing_exactly_one_ring_clears_everything_else() -> None:
    state = full_ring(DAY0)
    state.add(DAY0 + RING_DAYS, (DAY0 + RING_DAYS) * DAY_MS, 5, 0, 101)
    assert sum(state.counts) == 1 and sum(state.cents) == 5
    assert state.window_totals(DAY0 + RING_DAYS, 30) == (1, 5)


@pytest.mark.parametrize("jump", [31, 45, 1000])
def test_jump_of_more_than_the_ring_clears_every_bucket(jump: int) -> None:
    state = full_ring(DAY0)
    assert state.add(DAY0 + jump, (DAY0 + jump) * DAY_MS, 42, 0, 101) is True
    assert state.counts[(DAY0 + jump) % RING_DAYS] == 1
    assert sum(state.counts) == 1
    assert sum(state.cents) == 42
    assert state.window_totals(DAY0 + jump, 30) == (1, 42)
    assert state.last_day == DAY0 + jump


def test_same_day_adds_accumulate() -> None:
    state = CustomerState()
    for offset, cents in enumerate([100, 250, 1]):
        state.add(DAY0, TS0 + offset * 1000, cents, 0, offset)
    assert state.counts[DAY0 % RING_DAYS] == 3
    assert state.cents[DAY0 % RING_DAYS] == 351
    assert state.window_totals(DAY0, 1) == (3, 351)


def test_count_saturates_at_count_max() -> None:
    state = CustomerState(partition=0, offset=0, last_day=DAY0, last_ts=TS0)
    slot = DAY0 % RING_DAYS
    state.counts[slot] = COUNT_MAX - 1
    state.add(DAY0, TS0, 1, 0, 1)
    assert state.counts[slot] == COUNT_MAX
    state.add(DAY0, TS0, 1, 0, 2)
    assert state.counts[slot] == COUNT_MAX
    assert decode(encode(state)).counts[slot] == COUNT_MAX  # still fits its u2


def test_cents_saturate_at_cents_max() -> None:
    state = CustomerState(partition=0, offset=0, last_day=DAY0, last_ts=TS0)
    slot = DAY0 % RING_DAYS
    state.cents[slot] = CENTS_MAX - 10
    state.add(DAY0, TS0, 100, 0, 1)
    assert state.cents[slot] == CENTS_MAX
    state.add(DAY0, TS0, 500_000, 0, 2)
    assert state.cents[slot] == CENTS_MAX
    assert decode(encode(state)).cents[slot] == CENTS_MAX  # still fits its u4


def test_day_too_old_for_the_ring_is_not_stored() -> None:
    state = full_ring(DAY0)
    before_counts, before_cents = list(state.counts), list(state.cents)
    old_day = DAY0 - RING_DAYS
    assert state.add(old_day, old_day * DAY_MS, 999, 0, 101) is False
    assert state.counts == before_counts and state.cents == before_cents
    assert state.last_day == DAY0
    assert (state.partition, state.offset) == (0, 101)  # still marked as applied


def test_oldest_day_still_in_the_ring_is_stored() -> None:
    state = full_ring(DAY0)
    oldest = DAY0 - RING_DAYS + 1
    assert state.add(oldest, oldest * DAY_MS, 1000, 0, 101) is True
    assert state.counts[oldest % RING_DAYS] == 2
    assert state.cents[oldest % RING_DAYS] == oldest + 1 + 1000
    assert state.last_day == DAY0


# --- has_applied ---------------------------------------------------------------------------


def test_has_applied_semantics() -> None:
    state = CustomerState()
    assert not state.has_applied(0, 0)
    assert not state.has_applied(3, 10)
    state.add(DAY0, TS0, 1, partition=3, offset=10)
    assert state.has_applied(3, 10)
    assert state.has_applied(3, 9)
    assert state.has_applied(3, 0)
    assert not state.has_applied(3, 11)
    assert not state.has_applied(4, 10)
    assert not state.has_applied(2, 5)
    state.add(DAY0, TS0, 1, partition=4, offset=2)
    assert state.has_applied(4, 2)
    assert state.has_applied(3, 10), "every partition's guard is kept, not the latest only"
    assert not state.has_applied(3, 11)
    assert state.marks == {3: 10}
    state.add(DAY0, TS0, 1, partition=3, offset=11)  # back on 3: its mark is the state's
    assert state.marks == {4: 2} and (state.partition, state.offset) == (3, 11)


def test_marks_survive_the_stored_value_and_cost_nothing_on_one_partition() -> None:
    from fraudstream.features.customer_state import (
        MARK_BYTES,
        RECENT_IDS_BYTES,
        STATE_BYTES,
        decode_guarded,
        guard_covers,
        split_stored,
        stored_value,
    )

    one = CustomerState()
    one.add(DAY0, TS0, 1, partition=1, offset=5)
    assert len(encode(one)) == STATE_BYTES
    assert len(stored_value(encode(one), b"r" * RECENT_IDS_BYTES)) == \
        STATE_BYTES + RECENT_IDS_BYTES
    many = CustomerState()
    for partition, offset in [(2, 7), (0, 3), (5, 1), (2, 9)]:
        many.add(DAY0, TS0, 1, partition=partition, offset=offset)
    guarded = encode(many)
    assert len(guarded) == STATE_BYTES + 2 * MARK_BYTES  # partitions 0 and 5 beside 2
    for recent in (b"", b"r" * RECENT_IDS_BYTES):
        stored = stored_value(guarded, recent)
        assert split_stored(stored) == (guarded, recent or bytes(RECENT_IDS_BYTES))
        assert decode(stored) == many
    assert decode_guarded(guarded) == many
    for partition in range(7):
        for offset in range(11):
            assert guard_covers(guarded, partition, offset) == \
                many.has_applied(partition, offset), (partition, offset)


def test_has_applied_survives_encoding() -> None:
    state = CustomerState()
    state.add(DAY0, TS0, 1, partition=1, offset=77)
    again = decode(encode(state))
    assert again.has_applied(1, 77) and not again.has_applied(1, 78)
