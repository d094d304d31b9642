"""Materialize a history into the online store: the exact states a worker would hold.

The states are built by the online engine itself (``OnlineFeatureStore`` over an
in-memory store): the same kernels, the same guard offsets, the same label rules, so a
backfilled state and a streamed one cannot disagree. A history carries each event's
coordinates in the transactions topic when it has them (a replay of the topic, or a file
with ``partition`` and ``offset`` columns): the worker that later reads those events
from the topic skips them, and counts everything after them once. A history without
coordinates guards with ``NO_PARTITION``, a partition no topic has: it counts nothing
twice only if the workers start after the history (the cut-over at its end).

Writing is idempotent and resumable: a key is written when it is absent or already holds
exactly the built value (its TTL is refreshed). A key holding another state is replaced
only when the built state supersedes it (``supersedes``: a state a worker wrote onto an
emptied store, every event and label of which the rebuild counted too); any other is
left as it is and counted. Running the same backfill again, or again after an
interruption, writes the missing keys and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.customer_state import NO_PARTITION, StateFormatError
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.epoch import mark_rebuilt
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore, StateStore
from fraudstream.features.terminal_state import TerminalStateError

BUILD_EVENTS = 50_000  # events per engine batch while building
LABEL_EVENTS = 256  # labels per batch (apply_labels groups a batch's labels by terminal)
WRITE_KEYS = 2_000  # keys per write call (one round trip each)

Progress = Callable[[str, float, float | None], None]
"""(stage, done, total or None): stages are "building" and "writing"."""


@dataclass(frozen=True)
class History:
    """Transactions in arrival order (with their topic coordinates, or ``NO_PARTITION``
    and their position) and the confirmed labels to count after them."""

    transactions: TransactionBatch
    labels: LabelBatch


@dataclass
class WriteSummary:
    keys: int = 0
    written: int = 0  # absent before: written now
    unchanged: int = 0  # already held the built value: TTL refreshed
    replaced: int = 0  # held a state the built one supersedes (see ``supersedes``)
    kept: int = 0  # held another state (a worker counted more since): left as it was


def without_coordinates(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(partitions, offsets) for a history that has no topic coordinates."""
    return (np.full(count, NO_PARTITION, dtype=np.int64), np.arange(count, dtype=np.int64))


def build_states(history: History, prefix: str = "fs", ttl_days: int = 40,
                 progress: Progress = lambda *_: None) -> dict[bytes, bytes]:
    """Every customer and terminal key of ``history`` with the value the online engine
    holds after streaming it (transactions in order, then every label)."""
    memory = MemoryStateStore()
    engine = OnlineFeatureStore(memory, prefix, ttl_days)
    transactions = history.transactions
    total = len(transactions) + len(history.labels)
    done = 0
    progress("building", 0, total)
    for part in _slices(transactions, BUILD_EVENTS):
        _, pending = engine.fetch(part)
        engine.update(pending)
        done += len(part)
        progress("building", done, total)
    for labels in _label_slices(history.labels, LABEL_EVENTS):
        engine.apply_labels(labels)
        done += len(labels)
        progress("building", done, total)
    customers = [engine.customer_key(c) for c in dict.fromkeys(transactions.customer_ids)]
    terminals = [engine.terminal_key(t) for t in dict.fromkeys(transactions.terminal_ids)]
    states = {key: value for key, value in zip(customers, memory.get_many(customers),
                                               strict=True) if value is not None}
    states.update((key, _unguarded(value)) for key, value in zip(
        terminals, memory.get_many(terminals), strict=True) if value is not None)
    progress("building", total, total)
    return states


def _unguarded(value: bytes) -> bytes:
    """A terminal value without the NO_PARTITION mark (it guards nothing real; the
    counts in its ring keep the terminal from reading as new)."""
    state = terminal_state.decode(value)
    if NO_PARTITION not in state.marks:
        return value
    del state.marks[NO_PARTITION]
    return terminal_state.encode(state)


def write_states(store: StateStore, states: dict[bytes, bytes], prefix: str = "fs",
                 ttl_days: int = 40, progress: Progress = lambda *_: None) -> WriteSummary:
    """Write ``states`` in batches of WRITE_KEYS, each key with its TTL: absent keys are
    written, keys already holding the value get their TTL back, stored states the built
    one supersedes are replaced, others are kept."""
    ttl_ms = ttl_days * DAY_MS
    customers = prefix.encode() + b":c:"
    keys = sorted(states)  # a fixed order: a rerun walks the same batches
    summary = WriteSummary(keys=len(keys))
    progress("writing", 0, len(keys))
    for start in range(0, len(keys), WRITE_KEYS):
        batch = keys[start:start + WRITE_KEYS]
        values = [states[k] for k in batch]
        present = store.compare_and_set_many(batch, [None] * len(batch), values, ttl_ms)
        summary.written += len(batch) - len(present)
        if present:
            stored = store.get_many([batch[i] for i in present])
            # The same value again, so the key's TTL starts over as a worker's write does;
            # a key that changed in between is a conflict, kept like the others.
            same = [(i, raw) for i, raw in zip(present, stored, strict=True)
                    if raw == values[i]]
            newer = [(i, raw) for i, raw in zip(present, stored, strict=True)
                     if raw is not None and raw != values[i]
                     and supersedes(values[i], raw, batch[i].startswith(customers))]
            unchanged = _write_over(store, batch, values, same, ttl_ms)
            replaced = _write_over(store, batch, values, newer, ttl_ms)
            summary.unchanged += unchanged
            summary.replaced += replaced
            summary.kept += len(present) - unchanged - replaced
        progress("writing", min(start + WRITE_KEYS, len(keys)), len(keys))
    # The state is whole again: workers that flagged a loss stop flagging it, and
    # workers that had not found it yet take the rebuilt store as whole.
    mark_rebuilt(store, prefix, ttl_ms)
    return summary


def _write_over(store: StateStore, keys: list[bytes], values: list[bytes],
                chosen: list[tuple[int, bytes]], ttl_ms: int) -> int:
    """Write ``values`` over the ``chosen`` keys (index, value read) still holding what
    was read; how many were written."""
    refused = store.compare_and_set_many([keys[i] for i, _ in chosen],
                                         [raw for _, raw in chosen],
                                         [values[i] for i, _ in chosen], ttl_ms)
    return len(chosen) - len(refused)


def supersedes(built: bytes, stored: bytes, customer: bool) -> bool:
    """True when ``stored`` can hold only events and labels that ``built`` counts too, so
    writing ``built`` over it loses nothing: a state a worker wrote onto an emptied store
    after a loss, from events the rebuild replayed. Only a state built with topic
    coordinates can tell (its guards name the offsets it counted up to)."""
    try:
        if customer:
            old, new = customer_state.decode(stored), customer_state.decode(built)
            return (new.partition != NO_PARTITION and old.partition == new.partition
                    and old.offset <= new.offset)
        old_t, new_t = terminal_state.decode(stored), terminal_state.decode(built)
    except (StateFormatError, TerminalStateError):
        return True  # unreadable: a worker reads it as absent and writes over it too
    return (bool(old_t.marks)
            and all(p in new_t.marks and o <= new_t.marks[p] for p, o in old_t.marks.items())
            and old_t.fraud_ids.keys() <= new_t.fraud_ids.keys())


def materialize(history: History, store: StateStore, prefix: str = "fs",
                ttl_days: int = 40, progress: Progress = lambda *_: None) -> WriteSummary:
    """Build the states of ``history`` and write them to ``store``."""
    return write_states(store, build_states(history, prefix, ttl_days, progress), prefix,
                        ttl_days, progress)


def _slices(batch: TransactionBatch, size: int) -> Iterator[TransactionBatch]:
    for start in range(0, len(batch), size):
        stop = start + size
        yield TransactionBatch(
            batch.customer_ids[start:stop], batch.terminal_ids[start:stop],
            batch.timestamps_ms[start:stop], batch.amounts[start:stop],
            batch.partitions[start:stop], batch.offsets[start:stop],
            batch.transaction_ids[start:stop])


def _label_slices(labels: LabelBatch, size: int) -> Iterator[LabelBatch]:
    """Only the frauds count (a legit label changes no state), in their order."""
    frauds = np.flatnonzero(labels.is_fraud)
    for start in range(0, frauds.size, size):
        chosen = frauds[start:start + size].tolist()
        yield LabelBatch([labels.transaction_ids[i] for i in chosen],
                         [labels.terminal_ids[i] for i in chosen],
                         labels.timestamps_ms[chosen], labels.is_fraud[chosen])
