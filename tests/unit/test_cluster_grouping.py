"""features.cluster_store's pure part: a batch split by hash slot and node, and the
per-slot replies put back in the caller's order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from fraudstream.features.cluster_store import (
    _CAS_SHA,
    _Write,
    gather_conflicts,
    group_by_node,
    group_by_slot,
    scatter_values,
)
from fraudstream.features.store import CAS_SCRIPT

PROPERTY = settings(max_examples=200, deadline=None, database=None)
# A key of 1-3 ASCII letters, a hash tag now and then: few slots, many collisions.
KEY = st.from_regex(rb"\A(\{[ab]\})?[a-c]{1,3}\Z")


def three_nodes(slot: int) -> str:
    """The slot split of the test cluster (fraudstream.services.start_redis_cluster)."""
    return "n0" if slot <= 5460 else "n1" if slot <= 10921 else "n2"


def test_keys_of_one_hash_tag_share_a_slot_and_keep_their_order() -> None:
    keys = [b"{c1}x", b"plain", b"{c1}y", b"other", b"{c1}z", b"plain"]
    slots = group_by_slot(keys)
    assert slots[key_slot(b"{c1}x")] == [0, 2, 4]
    assert slots[key_slot(b"plain")] == [1, 5]  # a key asked twice is read twice
    assert list(slots) == list(dict.fromkeys(key_slot(k) for k in keys))
    assert group_by_slot([]) == {}


def test_slots_go_to_their_node_in_first_seen_order() -> None:
    slots = [16383, 0, 5461, 5460, 10922, 10921, 7]
    assert group_by_node(slots, three_nodes) == {
        "n2": [16383, 10922], "n0": [0, 5460, 7], "n1": [5461, 10921]}


@PROPERTY
@given(st.lists(KEY, max_size=30))
def test_grouping_covers_every_key_once_with_one_slot_per_group(keys: list[bytes]) -> None:
    slots = group_by_slot(keys)
    assert sorted(i for positions in slots.values() for i in positions) == list(range(len(keys)))
    for slot, positions in slots.items():
        assert positions == sorted(positions)
        assert {key_slot(keys[i]) for i in positions} == {slot}
    by_node = group_by_node(slots, three_nodes)
    assert sorted(s for node_slots in by_node.values() for s in node_slots) == sorted(slots)
    assert all({three_nodes(s) for s in node_slots} == {node}
               for node, node_slots in by_node.items())


@PROPERTY
@given(st.lists(st.tuples(KEY, st.binary(max_size=3) | st.none()), max_size=30))
def test_per_slot_mget_replies_come_back_in_the_callers_order(
        pairs: list[tuple[bytes, bytes | None]]) -> None:
    keys = [key for key, _ in pairs]
    stored = dict(pairs)  # what a server holds: the last value given for a key
    slots = group_by_slot(keys)
    replies = {slot: [stored[keys[i]] for i in positions] for slot, positions in slots.items()}
    assert scatter_values(slots, replies, len(keys)) == [stored[key] for key in keys]


@PROPERTY
@given(st.lists(st.tuples(KEY, st.booleans()), max_size=30))
def test_per_slot_conflicts_become_sorted_caller_indices(
        pairs: list[tuple[bytes, bool]]) -> None:
    keys = [key for key, _ in pairs]
    slots = group_by_slot(keys)
    # Each slot's script reports its conflicts as indices into the keys it was given.
    replies = {slot: [j for j, i in enumerate(positions) if pairs[i][1]]
               for slot, positions in slots.items()}
    assert gather_conflicts(slots, replies) == [i for i, (_, c) in enumerate(pairs) if c]


def test_each_compare_and_set_command_carries_the_keys_of_one_slot() -> None:
    keys = [b"{a}1", b"b", b"{a}2", b"c"]
    write = _Write(keys, [b"old", None, None, b"x"], [b"n1", b"n2", b"n3", b"n4"], 500)
    tag_slot = key_slot(b"{a}1")
    assert write.command(tag_slot, retry=False) == (
        "EVALSHA", _CAS_SHA, 2, b"{a}1", b"{a}2", 500, b"old", b"n1", b"", b"n3")
    assert write.command(key_slot(b"c"), retry=True) == (
        "EVAL", CAS_SCRIPT, 1, b"c", 500, b"x", b"n4")
    for slot in write.slots:
        command = write.command(slot, retry=False)
        assert {key_slot(k) for k in command[3:3 + command[2]]} == {slot}
