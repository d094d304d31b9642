"""Many byte strings as one buffer and their lengths: how a batch's keys and values reach
the compiled kernels (``features.kernels``, ``features.resp_pack``) without a Python
object per key, and how their results come back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


# Slots, not frozen: a frozen dataclass's __init__ costs about 5 us, every batch.
@dataclass(slots=True)
class ByteColumn:
    """Item i is the ``lengths[i]`` bytes after items 0..i-1 in ``data``; a length of -1
    is an absent item (None), which takes no bytes."""

    data: np.ndarray  # uint8, read-only: the bytes of the present items, back to back
    lengths: np.ndarray  # int64

    @classmethod
    def of(cls, items: Sequence[bytes | None]) -> ByteColumn:
        lengths = np.fromiter([-1 if item is None else len(item) for item in items],
                              np.int64, len(items))
        return cls(np.frombuffer(b"".join(filter(None, items)), np.uint8), lengths)

    @classmethod
    def of_present(cls, items: Sequence[bytes]) -> ByteColumn:
        """``of`` for items none of which is absent (a batch's keys)."""
        return cls(np.frombuffer(b"".join(items), np.uint8),
                   np.fromiter(map(len, items), np.int64, len(items)))

    @classmethod
    def of_array(cls, data: np.ndarray, lengths: np.ndarray) -> ByteColumn:
        """A column of a kernel's output buffer, made read-only: the kernels are compiled
        for read-only byte buffers only."""
        view = data.view()
        view.flags.writeable = False
        return cls(view, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def tolist(self) -> list[bytes | None]:
        data, at = self.data.tobytes(), 0
        items: list[bytes | None] = []
        for length in self.lengths.tolist():
            if length < 0:
                items.append(None)
            else:
                items.append(data[at:at + length])
                at += length
        return items
