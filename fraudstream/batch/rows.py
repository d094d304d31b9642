"""The accepted rows of a whole file, as columns, and the checks across rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fraudstream.batch.files import InputFileError
from fraudstream.batch.validate import Checked, not_none

DUPLICATE_LABEL = "label ignored: this transaction's fraud label was already counted"


def accepted_part(checked: Checked) -> Checked:
    """The accepted rows of a checked chunk."""
    keep = checked.accepted
    take = pa.array(np.flatnonzero(keep))
    return Checked(
        checked.rows[keep], checked.reasons[keep],
        {k: v.take(take) for k, v in checked.ids.items()}, checked.timestamps[keep],
        checked.amounts[keep], checked.fraud[keep], checked.labelled[keep],
        None if checked.known_ms is None else checked.known_ms[keep],
        checked.label_reasons[keep])


@dataclass
class Rows:
    """Accepted rows of the whole file, in file order."""

    rows: np.ndarray  # 1-based data row numbers
    ids: dict[str, pa.Array]
    timestamps: np.ndarray
    amounts: np.ndarray
    fraud: np.ndarray
    labelled: np.ndarray
    known_ms: np.ndarray | None
    label_reasons: np.ndarray

    @classmethod
    def join(cls, parts: list[Checked]) -> Rows:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        known = None if parts[0].known_ms is None else cat("known_ms")
        return cls(cat("rows"),
                   {k: pa.concat_arrays([p.ids[k] for p in parts]) for k in parts[0].ids},
                   cat("timestamps"), cat("amounts"), cat("fraud"), cat("labelled"), known,
                   cat("label_reasons"))

    def __len__(self) -> int:
        return len(self.rows)

    def codes(self, name: str) -> np.ndarray:
        """Dense integer codes of an id column (equal ids, equal codes)."""
        codes: np.ndarray = (  # pyarrow has no types: Any
            self.ids[name].dictionary_encode().indices.to_numpy().astype(np.int64))
        return codes

    def ignored_labels(self) -> np.ndarray:
        return np.flatnonzero(not_none(self.label_reasons))

    def drop_duplicate_frauds(self, terminals: np.ndarray) -> None:
        """A worker counts a fraud label once per transaction id at its terminal: keep the
        first known, ignore the others."""
        frauds = np.flatnonzero(self.fraud)
        if frauds.size < 2:
            return
        tx = self.ids["transaction_id"].take(pa.array(frauds)).dictionary_encode().indices
        key = terminals[frauds] * (len(frauds) + 1) + tx.to_numpy().astype(np.int64)
        order = (np.argsort(self.known_ms[frauds], kind="stable") if self.known_ms is not None
                 else np.arange(frauds.size))
        _, first = np.unique(key[order], return_index=True)
        keep = np.zeros(frauds.size, dtype=bool)
        keep[order[first]] = True
        duplicates = frauds[~keep]
        self.fraud[duplicates] = 0
        self.labelled[duplicates] = False
        self.label_reasons[duplicates] = DUPLICATE_LABEL

    def check_arrival_order(self, customers: np.ndarray) -> None:
        """The feature windows need each customer's transactions in time order."""
        order = np.argsort(customers, kind="stable")
        c, t = customers[order], self.timestamps[order]
        back = np.flatnonzero((c[1:] == c[:-1]) & (t[1:] < t[:-1]))
        if back.size:
            first = int(order[1:][back].min())
            customer = self.ids["customer_id"][first].as_py()
            raise InputFileError(
                f"row {self.rows[first]}: customer {customer}'s timestamp is earlier than "
                f"their previous transaction's; rows must be in arrival order (or pass "
                f"--sort-by-time)")
