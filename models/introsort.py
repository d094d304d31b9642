"""numpy's classic unstable quicksort, in Python, for results that depend on how it
orders ties.

The handbook ran on numpy versions whose ``argsort(kind="quicksort")`` was this introsort
for every type; newer numpy sorts integers and floats with SIMD kernels that leave ties in
another order (datetimes and objects still take this path). Two of the handbook's results
depend on the order of ties: the transaction ids of its dataset (a time sort) and the
ranking behind card precision@k (a descending sort of scores, where trees give many
cards the same score).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def introsort_argsort(keys: np.ndarray) -> np.ndarray:
    """numpy's classic unstable ``argsort(kind="quicksort")``: median-of-three quicksort,
    the larger part pushed on a stack, insertion sort for 16 elements or fewer, heapsort past a
    depth of twice the bit length. Ties end in exactly the order that algorithm leaves."""
    v = keys.tolist()
    n = len(v)
    order = list(range(n))
    if n < 2:
        return np.asarray(order, dtype=np.int64)
    stack: list[tuple[int, int, int]] = []
    left, right = 0, n - 1
    depth = (n.bit_length() - 1) * 2
    while True:
        if depth < 0:
            _heapsort(v, order, left, right)
        else:
            while right - left > 15:
                middle = left + ((right - left) >> 1)
                if v[order[middle]] < v[order[left]]:
                    order[middle], order[left] = order[left], order[middle]
                if v[order[right]] < v[order[middle]]:
                    order[right], order[middle] = order[middle], order[right]
                if v[order[middle]] < v[order[left]]:
                    order[middle], order[left] = order[left], order[middle]
                pivot = v[order[middle]]
                i, j = left, right - 1
                order[middle], order[j] = order[j], order[middle]
                while True:
                    i += 1
                    while v[order[i]] < pivot:
                        i += 1
                    j -= 1
                    while pivot < v[order[j]]:
                        j -= 1
                    if i >= j:
                        break
                    order[i], order[j] = order[j], order[i]
                order[i], order[right - 1] = order[right - 1], order[i]
                depth -= 1
                if i - left < right - i:
                    stack.append((i + 1, right, depth))
                    right = i - 1
                else:
                    stack.append((left, i - 1, depth))
                    left = i + 1
            for i in range(left + 1, right + 1):
                item = order[i]
                key = v[item]
                j = i
                while j > left and key < v[order[j - 1]]:
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = item
        if not stack:
            break
        left, right, depth = stack.pop()
    return np.asarray(order, dtype=np.int64)


def _heapsort(v: Sequence[float], order: list[int], left: int, right: int) -> None:
    """numpy's ``aheapsort`` on ``order[left:right + 1]`` (1-based sift-down)."""
    a = order[left:right + 1]
    n = len(a)
    a.insert(0, 0)

    def sift(i: int, size: int) -> None:
        item = a[i]
        j = i * 2
        while j <= size:
            if j < size and v[a[j]] < v[a[j + 1]]:
                j += 1
            if v[item] < v[a[j]]:
                a[i] = a[j]
                i = j
                j += j
            else:
                break
        a[i] = item

    for i in range(n >> 1, 0, -1):
        sift(i, n)
    for size in range(n, 1, -1):
        a[1], a[size] = a[size], a[1]
        sift(1, size - 1)
    order[left:right + 1] = a[1:]


def descending_order(values: np.ndarray) -> np.ndarray:
    """pandas' ``sort_values(ascending=False)`` with its default quicksort: it reverses the
    values, sorts them ascending and reverses the result, so tied values come out in the
    order that gives."""
    n = values.size
    ascending = introsort_argsort(values[::-1])
    return (n - 1 - ascending)[::-1]
