"""The compiled kernel's transaction-id digests equal features.recent_ids.digest_value,
the pure-Python definition (64-bit FNV-1a folded to 40 bits, never 0), on any id."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import kernels, recent_ids
from fraudstream.features.online import _id_column


def test_fnv1a_reference_values() -> None:
    # FNV-1a 64 of "" and "a" are published constants; the digest folds them.
    assert recent_ids.digest_value("") == (0xCBF29CE484222325
                                           ^ (0xCBF29CE484222325 >> 40)) & (2**40 - 1)
    h = 0xAF63DC4C8601EC8C  # FNV-1a 64 of "a"
    assert recent_ids.digest_value("a") == (h ^ (h >> 40)) & (2**40 - 1)
    assert recent_ids.digest("a") == recent_ids.digest_value("a").to_bytes(5, "little")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=30))
def test_kernel_digests_equal_the_definition(ids: list[str]) -> None:
    data, lengths = _id_column(ids)
    digests = kernels._digests(data, lengths) if ids else np.zeros(0, np.uint64)
    assert digests.tolist() == [recent_ids.digest_value(tx) for tx in ids]
