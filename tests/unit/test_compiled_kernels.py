"""The compiled kernel (features.kernels.batch_features, behind OnlineFeatureStore.fetch)
equals the pure-Python sequential definition (features.online.apply_batch and the state
encoders) exactly: every feature value and every stored byte, on the parity stream the
worker parity test streams, with its labels, cut into batches of many sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fraudstream.features import customer_state, kernels, terminal_state
from fraudstream.features.definitions import DAY_MS, FEATURE_NAMES, LABEL_DELAY_DAYS
from fraudstream.features.online import (
    LabelBatch,
    OnlineFeatureStore,
    TransactionBatch,
    apply_batch,
)
from fraudstream.features.store import MemoryStateStore
from fraudstream.simulator.generator import simulate
from tests.population import recent

BATCH_SIZES = (1, 3, 64, 500, 17, 2)  # cycled over the stream
HISTORY_NAMES = ("customer_amount_over_mean_1d", "customer_mean_1d_over_mean_30d",
                 "customer_mean_7d_over_mean_before_7d", "customer_mean_1d_over_mean_before_14d")
HISTORY_COLUMNS = [FEATURE_NAMES.index(name) for name in HISTORY_NAMES]


def _parity_stream() -> tuple[TransactionBatch, np.ndarray, list[str]]:
    """The stream of tests/integration/test_parity_replay.py, four partitions by customer."""
    frame = simulate(recent(40, customers=700, terminals=1400, seed=11))
    customers = frame["customer_id"].astype(str).tolist()
    partitions = np.array([int(c) % 4 for c in frame["customer_id"]], dtype=np.int64)
    offsets = np.empty(len(frame), dtype=np.int64)
    seen = [0] * 4
    for i, p in enumerate(partitions.tolist()):
        offsets[i], seen[p] = seen[p], seen[p] + 1
    batch = TransactionBatch(customers, frame["terminal_id"].astype(str).tolist(),
                             frame["timestamp"].to_numpy(np.int64),
                             frame["amount"].to_numpy(np.float64), partitions, offsets)
    return batch, frame["is_fraud"].to_numpy(bool), frame["transaction_id"].astype(str).tolist()


def _slice(batch: TransactionBatch, a: int, b: int) -> TransactionBatch:
    return TransactionBatch(batch.customer_ids[a:b], batch.terminal_ids[a:b],
                            batch.timestamps_ms[a:b], batch.amounts[a:b],
                            batch.partitions[a:b], batch.offsets[a:b])


def test_compiled_kernel_equals_the_reference_on_the_parity_stream() -> None:
    stream, frauds, tx_ids = _parity_stream()
    assert len(stream) >= 50_000
    store = MemoryStateStore()
    online = OnlineFeatureStore(store, prefix="p")
    customers: dict[str, customer_state.CustomerState] = {}
    terminals: dict[str, terminal_state.TerminalState] = {}
    days = stream.timestamps_ms // DAY_MS
    labelled_up_to = int(days[0]) - LABEL_DELAY_DAYS - 1
    labels_applied = start = 0
    history_values = []  # the history columns (customer amounts against their past)
    for size in itertools.cycle(BATCH_SIZES):
        if start >= len(stream):
            break
        stop = min(start + size, len(stream))
        # Labels 7 days old go in first, the same way into both engines: the kernel then
        # carries fraud ids and prunes them as rings roll.
        due = np.flatnonzero((days[:start] > labelled_up_to)
                             & (days[:start] <= days[start] - LABEL_DELAY_DAYS)
                             & frauds[:start])
        if due.size:
            labels = LabelBatch([tx_ids[i] for i in due],
                                [stream.terminal_ids[i] for i in due],
                                stream.timestamps_ms[due], np.ones(due.size, dtype=bool))
            online.apply_labels(labels)
            for i in due.tolist():
                terminals.setdefault(stream.terminal_ids[i], terminal_state.TerminalState()
                                     ).add_fraud(int(days[i]), tx_ids[i])
            labels_applied += due.size
        labelled_up_to = max(labelled_up_to, int(days[start]) - LABEL_DELAY_DAYS)

        batch = _slice(stream, start, stop)
        matrix, pending = online.fetch(batch)
        online.update(pending)
        c_ids = list(dict.fromkeys(batch.customer_ids))
        t_ids = list(dict.fromkeys(batch.terminal_ids))
        expected, _, _ = apply_batch(
            [customers.setdefault(c, customer_state.CustomerState()) for c in c_ids],
            np.array([c_ids.index(c) for c in batch.customer_ids]),
            [terminals.setdefault(t, terminal_state.TerminalState()) for t in t_ids],
            np.array([t_ids.index(t) for t in batch.terminal_ids]), batch)
        assert np.array_equal(matrix, expected), f"features differ in events {start}..{stop}"
        history_values.append(matrix[:, HISTORY_COLUMNS])
        start = stop

    # Both sides of every history column are exercised: empty days before the last 7 or
    # 14 (0) and filled ones, means above and below the customer's past.
    history = np.vstack(history_values)
    for c, name in enumerate(HISTORY_NAMES):
        assert (history[:, c] > 1.0).sum() > 1000 and (history[:, c] < 1.0).sum() > 1000, name
    for c in (2, 3):
        assert (history[:, c] == 0.0).sum() > 100, HISTORY_NAMES[c]

    assert labels_applied > 100, labels_applied
    for cid, state in customers.items():
        assert store.get_many([online.customer_key(cid)])[0] == customer_state.stored_value(
            customer_state.encode(state), b"")
    for tid, state in terminals.items():
        stored = store.get_many([online.terminal_key(tid)])[0]
        assert stored == terminal_state.encode(state), tid


def test_a_batch_of_other_types_is_refused_not_compiled() -> None:
    """After the warm-up no live batch compiles: arguments of another type raise."""
    OnlineFeatureStore(MemoryStateStore())  # compiles the kernels, once per process
    one = np.zeros(1, np.int32)
    with pytest.raises(TypeError, match="No matching definition"):
        kernels.batch_features(np.frombuffer(b"", np.uint8), np.full(2, -1, np.int64), 1,
                               one, one, one, np.ones(1), one, one, *kernels.NO_IDS)
