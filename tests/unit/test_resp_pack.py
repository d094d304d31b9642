"""features.resp_pack writes, for a whole batch in one compiled call, exactly the bytes
hiredis packs for the guarded SET commands of store.GuardedWrite.of_sets."""

from __future__ import annotations

import hiredis
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features.byte_columns import ByteColumn
from fraudstream.features.resp_pack import compile_packer, guarded_sets
from fraudstream.features.store import GuardedWrite

value = st.binary(min_size=1, max_size=300)
key_write = st.tuples(st.binary(min_size=1, max_size=40),  # key
                      st.one_of(st.none(), value),       # read: absent or its bytes
                      st.one_of(st.none(), value))       # new: unchanged or its bytes


@settings(max_examples=300, deadline=None)
@given(st.lists(key_write, max_size=40), st.integers(1, 10**12))
def test_packed_sets_are_hiredis_bytes(writes: list[tuple[bytes, bytes | None,
                                                          bytes | None]], ttl: int) -> None:
    compile_packer()
    keys, reads, news = ([w[i] for w in writes] for i in range(3))
    packed, written = guarded_sets(ByteColumn.of(keys), ByteColumn.of(reads),
                                   ByteColumn.of(news), ttl)
    changed = [i for i, new in enumerate(news) if new is not None]
    assert written == changed
    expected = GuardedWrite.of_sets([keys[i] for i in changed], [reads[i] for i in changed],
                                    [news[i] for i in changed], ttl)
    assert packed == b"".join(hiredis.pack_command(c) for c in expected.commands)


def test_a_batch_with_nothing_changed_packs_nothing() -> None:
    compile_packer()
    column = ByteColumn.of([b"k"])
    assert guarded_sets(column, ByteColumn.of([None]), ByteColumn.of([None]), 5) == (b"", [])
