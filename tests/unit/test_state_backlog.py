"""stream.core's state backlog on the in-memory store: what the store could not take while
it was down is applied first, in order, when it answers again; nothing is dropped, a
write whose reply never came is done again (and counts once), and each batch's offsets
wait until its events are in the store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.online import LabelBatch, OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import Conflicts, MemoryStateStore
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecisionCore
from fraudstream.stream.delivery import DeliveryTracker
from fraudstream.stream.metrics import WorkerMetrics

T0 = 1_522_540_800_000 + 10 * DAY_MS


class FlakyStore(MemoryStateStore):
    """The in-memory store, down while ``down`` is set (every call raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store down")

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self._check()
        return super().get_many(keys)

    def compare_and_set_many(self, keys, expected, values, ttl_ms):
        self._check()
        return super().compare_and_set_many(keys, expected, values, ttl_ms)

    def send_compare_and_set_many(self, keys, expected, values, ttl_ms) -> Conflicts:
        self._check()
        return super().send_compare_and_set_many(keys, expected, values, ttl_ms)

    def get_many_after(self, write, keys):
        self._check()
        return super().get_many_after(write, keys)


class Model:
    version = "m1"

    def score(self, matrix: np.ndarray):
        from fraudstream.models.scorer import ScoredBatch

        n = len(matrix)
        return ScoredBatch(np.zeros(n), np.zeros(n, dtype=np.int64), [[] for _ in range(n)])


def batch(offsets: list[int], customer: str = "c", terminal: str = "t") -> TransactionBatch:
    n = len(offsets)
    return TransactionBatch([customer] * n, [terminal] * n,
                            np.array([T0 + 60_000 * o for o in offsets], dtype=np.int64),
                            np.full(n, 10.0), np.zeros(n, dtype=np.int64),
                            np.array(offsets, dtype=np.int64))


def core_on(store: FlakyStore) -> DecisionCore:
    return DecisionCore(OnlineFeatureStore(store), CircuitBreaker(1, 0.0),
                        WorkerMetrics.create(CollectorRegistry()))


def stored_count(store: FlakyStore, customer: str = "c") -> int:
    raw = store.get_many([f"fs:c:{customer}".encode()])[0]
    return sum(customer_state.decode(raw).counts)


def test_batches_decided_while_the_store_is_down_are_counted_once_it_is_back() -> None:
    store = FlakyStore()
    core, tracker = core_on(store), DeliveryTracker()
    model = Model()
    first = tracker.open_batch({("tx", 0): 0}, 0, state=True)
    decided = core.decide(batch([0]), model, first.state_written)
    assert decided.degraded == [] and decided.update is not None
    core.write(decided.update, batch([0]), first.state_written)
    store.down = True
    held = []
    for offset in (1, 2, 3):
        pending = tracker.open_batch({("tx", 0): offset}, 0, state=True)
        held.append(pending)
        assert core.decide(batch([offset]), model, pending.state_written).degraded == \
            ["features"]
    assert core.backlog.events == 4, "the write in flight is redone too"
    assert tracker.release() == [], "no offset is released before its events are counted"
    store.down = False
    after = core.decide(batch([4]), model)
    assert after.degraded == []
    assert after.matrix[0, 3] == 5, "the new batch sees every earlier event, once"
    assert core.backlog.events == 0 and all(p.done for p in held) and first.done
    assert [tp.offset for tp in tracker.release()] == [4]
    core.write(after.update, batch([4]))
    core.complete()
    assert stored_count(store) == 5


def test_labels_while_the_store_is_down_wait_in_order_behind_the_transactions() -> None:
    store = FlakyStore()
    core = core_on(store)
    store.down = True
    core.decide(batch([0], terminal="t"), Model())
    labels = LabelBatch(["x0"], ["t"], np.array([T0]), np.array([True]))
    written: list[str] = []
    assert core.apply_labels(labels, lambda: written.append("labels")) is None
    store.down = False
    core.retry_backlog()
    assert written == ["labels"]
    raw = store.get_many([b"fs:t:t"])[0]
    state = terminal_state.decode(raw)
    assert sum(state.counts) == 1 and sum(state.frauds) == 1, \
        "the label was applied after the transaction it labels"


def test_a_paused_worker_resumes_by_retrying_the_backlog_without_new_batches() -> None:
    store = FlakyStore()
    core = core_on(store)
    store.down = True
    core.decide(batch([0, 1]), Model())
    core.retry_backlog()
    assert core.backlog.events == 2
    store.down = False
    core.retry_backlog()
    assert core.backlog.events == 0 and stored_count(store) == 2


def test_the_http_path_never_keeps_state_for_later() -> None:
    store = FlakyStore()
    core = core_on(store)
    store.down = True
    assert core.decide(batch([0]), Model(), writes=False).degraded == ["features"]
    assert core.backlog.events == 0
