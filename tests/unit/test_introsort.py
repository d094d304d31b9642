"""models.introsort: numpy's classic quicksort, ties included, and pandas' descending sort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.introsort import _heapsort, descending_order, introsort_argsort


@pytest.mark.parametrize("size", [0, 1, 2, 16, 17, 40, 1000, 30_000])
def test_the_same_order_as_numpys_generic_quicksort(size: int) -> None:
    # numpy still sorts datetimes with the classic introsort; ties are where sorts differ.
    keys = np.random.default_rng(size).integers(0, max(2, size // 8), size)
    expected = np.argsort(keys.astype("datetime64[s]"), kind="quicksort")
    assert introsort_argsort(keys).tolist() == expected.tolist()


@pytest.mark.parametrize("size", [1, 2, 17, 1000])
def test_the_depth_fallback_heapsort_sorts(size: int) -> None:
    # Only reached on inputs that defeat median-of-three; numpy no longer exposes its
    # argsort heapsort (kind="heapsort" sorts like "quicksort"), so this checks the sort.
    keys = np.random.default_rng(size).integers(0, max(2, size // 8), size)
    order = list(range(size))
    _heapsort(keys.tolist(), order, 0, size - 1)
    assert sorted(order) == list(range(size))
    assert np.all(np.diff(keys[order]) >= 0)


@pytest.mark.parametrize("size", [5, 17, 300, 5000])
def test_descending_order_is_pandas_descending_quicksort(size: int) -> None:
    # Object values take numpy's generic sort, so pandas' own answer is the reference.
    scores = np.random.default_rng(size).integers(0, max(2, size // 10), size) / 10
    expected = pd.Series(scores.astype(object)).sort_values(ascending=False,
                                                            kind="quicksort").index
    assert descending_order(scores).tolist() == expected.tolist()
