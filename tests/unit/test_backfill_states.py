"""features.backfill: the states it builds are what the online engine holds after
streaming the same history in worker-sized batches, labels and guards included, and a
rebuilt state replaces only a stored one it counts all of."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.backfill import History, build_states, supersedes
from fraudstream.features.customer_state import NO_PARTITION, RECENT_IDS_BYTES, STATE_BYTES
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore
from fraudstream.history.frames import history_of
from fraudstream.simulator.generator import SimulationConfig, simulate

FRAME = simulate(SimulationConfig(customers=40, terminals=60, days=45, seed=1))


def _streamed(history: History, size: int) -> dict[bytes, bytes]:
    """What a worker leaves: batches of ``size`` (with their transaction ids, as a worker's
    batches have them), the labels after them."""
    memory = MemoryStateStore()
    engine = OnlineFeatureStore(memory)
    tx = history.transactions
    for start in range(0, len(tx), size):
        part = slice(start, start + size)
        _, pending = engine.fetch(TransactionBatch(
            tx.customer_ids[part], tx.terminal_ids[part], tx.timestamps_ms[part],
            tx.amounts[part], tx.partitions[part], tx.offsets[part],
            tx.transaction_ids[part]))
        engine.update(pending)
    engine.apply_labels(history.labels)
    return {key: value for key, (value, _) in memory.data.items()}


def with_coordinates(frame: pd.DataFrame, partitions: int) -> History:
    """The frame as a topic replay: customers keyed to partitions, offsets in order."""
    plain = history_of(frame)
    tx = plain.transactions
    partition = frame["customer_id"].to_numpy(np.int64) % partitions
    offset = np.zeros(len(frame), dtype=np.int64)
    for p in range(partitions):
        mine = np.flatnonzero(partition == p)
        offset[mine] = np.arange(mine.size)
    return History(TransactionBatch(tx.customer_ids, tx.terminal_ids, tx.timestamps_ms,
                                    tx.amounts, partition, offset, tx.transaction_ids),
                   plain.labels)


def _same(built: dict[bytes, bytes], streamed: dict[bytes, bytes]) -> None:
    assert built.keys() == streamed.keys()
    for key, value in built.items():
        if key.startswith(b"fs:c:"):
            assert value == streamed[key], key  # byte for byte
            # with the digests of its last transaction ids, as a worker writes it
            assert len(value) == STATE_BYTES + RECENT_IDS_BYTES, key
        else:  # the fraud ids' order follows the labels' arrival, not their meaning
            assert terminal_state.decode(value) == terminal_state.decode(streamed[key]), key


def test_states_with_topic_coordinates_are_the_streamed_states() -> None:
    history = with_coordinates(FRAME, partitions=3)
    built = build_states(history)
    _same(built, _streamed(history, size=97))
    terminal = terminal_state.decode(built[b"fs:t:" + str(FRAME["terminal_id"][0]).encode()])
    assert set(terminal.marks) <= {0, 1, 2} and terminal.marks
    assert sum(sum(terminal_state.decode(v).frauds) for k, v in built.items()
               if k.startswith(b"fs:t:")) > 0, "the labels must count"


def test_a_history_without_coordinates_guards_no_real_partition() -> None:
    built = build_states(history_of(FRAME))
    customer = customer_state.decode(built[b"fs:c:" + str(FRAME["customer_id"][0]).encode()])
    assert customer.partition == NO_PARTITION and not customer.is_new
    assert not customer.has_applied(0, 0)
    for key, value in built.items():
        if key.startswith(b"fs:t:"):
            state = terminal_state.decode(value)
            assert state.marks == {} and not state.is_new


def test_legit_labels_change_nothing_and_a_repeated_fraud_counts_once() -> None:
    plain = history_of(FRAME)
    fraud = np.flatnonzero(plain.labels.is_fraud)[:1]
    twice = LabelBatch([plain.labels.transaction_ids[int(i)] for i in (*fraud, *fraud)],
                       [plain.labels.terminal_ids[int(i)] for i in (*fraud, *fraud)],
                       plain.labels.timestamps_ms[np.r_[fraud, fraud]],
                       np.ones(2, dtype=bool))
    once = build_states(History(plain.transactions, LabelBatch(
        twice.transaction_ids[:1], twice.terminal_ids[:1], twice.timestamps_ms[:1],
        twice.is_fraud[:1])))
    assert build_states(History(plain.transactions, twice)) == once
    legit = LabelBatch(plain.labels.transaction_ids, plain.labels.terminal_ids,
                       plain.labels.timestamps_ms, np.zeros(len(plain.labels), dtype=bool))
    none = LabelBatch([], [], np.zeros(0, np.int64), np.zeros(0, bool))
    assert build_states(History(plain.transactions, legit)) == build_states(
        History(plain.transactions, none))


def _customer(partition: int, offset: int) -> bytes:
    state = customer_state.CustomerState()
    state.add(20_000, 20_000 * 86_400_000, 1250, partition, offset)
    return customer_state.encode(state)


def _terminal(marks: dict[int, int], frauds: dict[int, int]) -> bytes:
    state = terminal_state.TerminalState()
    for partition, offset in marks.items():
        state.add_transaction(20_000, partition, offset)
    state.fraud_ids = dict(frauds)
    return terminal_state.encode(state)


def test_a_rebuilt_state_supersedes_only_states_it_counts_all_of() -> None:
    built = _customer(2, 100)
    assert supersedes(built, _customer(2, 40), customer=True)
    assert supersedes(built, _customer(2, 100), customer=True)
    assert not supersedes(built, _customer(2, 101), customer=True), "the worker is ahead"
    assert not supersedes(built, _customer(1, 5), customer=True), "another partition"
    assert not supersedes(_customer(NO_PARTITION, 100), _customer(NO_PARTITION, 3),
                          customer=True), "without coordinates nothing can be told"
    assert supersedes(built, b"\x00garbage", customer=True), "unreadable reads as absent"

    rebuilt = _terminal({0: 50, 1: 70}, {11: 20_000, 12: 20_000})
    assert supersedes(rebuilt, _terminal({1: 60}, {12: 20_000}), customer=False)
    assert not supersedes(rebuilt, _terminal({1: 71}, {}), customer=False)
    assert not supersedes(rebuilt, _terminal({2: 1}, {}), customer=False)
    assert not supersedes(rebuilt, _terminal({0: 10}, {13: 20_000}), customer=False), \
        "a label the rebuild did not read"
    assert not supersedes(rebuilt, _terminal({}, {}), customer=False)
