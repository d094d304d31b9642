"""The feature state's epoch (features.epoch) on the in-memory store twin: every way the
state can be lost is found, nothing else is, and a loss stays known until a rebuild."""

from __future__ import annotations

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from fraudstream.features.epoch import (
    MISSING,
    REPLACED,
    ROLLED_BACK,
    SENTINELS,
    Sentinel,
    StateEpoch,
    mark_rebuilt,
    sentinel_keys,
)
from fraudstream.features.store import MemoryStateStore

TTL_MS = 40 * 86_400_000


def epoch(store: MemoryStateStore, prefix: str = "fs") -> StateEpoch:
    return StateEpoch(store, prefix, TTL_MS)


def test_one_sentinel_in_each_range_of_hash_slots() -> None:
    keys = sentinel_keys("fs")
    width = REDIS_CLUSTER_HASH_SLOTS // SENTINELS
    assert sorted(key_slot(k) // width for k in keys) == list(range(SENTINELS))
    assert all(k.startswith(b"fs:epoch:{") for k in keys)
    assert sentinel_keys("other")[0].startswith(b"other:epoch:")


def test_a_first_start_on_an_empty_store_is_no_loss() -> None:
    store = MemoryStateStore()
    first = epoch(store).check(expect_state=False)
    assert first.found is None and first.lost == ""
    again = epoch(store).check(expect_state=True)  # a second worker, state expected
    assert again.found is None and again.epoch == first.epoch


def test_no_epoch_at_start_when_state_should_exist_is_a_loss() -> None:
    reading = epoch(MemoryStateStore()).check(expect_state=True)
    assert reading.found is not None and reading.found.kind == MISSING
    assert reading.lost.startswith("missing:")


def test_checks_of_two_workers_in_turn_find_nothing() -> None:
    store = MemoryStateStore()
    a, b = epoch(store), epoch(store)
    seqs = []
    for turn in range(3):
        for worker in (a, b):
            assert worker.check(expect_state=turn > 0).found is None
        seqs.append(Sentinel.decode(store.get_many(sentinel_keys("fs"))[0]).seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_redis_restarted_empty_is_missing_and_every_worker_learns_it() -> None:
    store = MemoryStateStore()
    a, b = epoch(store), epoch(store)
    before = a.check(expect_state=False)
    b.check(expect_state=False)
    store.data.clear()
    found = a.check(expect_state=True)
    assert found.found is not None and found.found.kind == MISSING
    assert found.epoch != before.epoch, "an empty store starts a new epoch"
    other = b.check(expect_state=True)
    assert other.found is not None and other.found.kind == REPLACED
    late = epoch(store).check(expect_state=True)  # a worker started after the loss
    assert late.found is None and late.lost == found.lost


def test_one_shard_losing_its_sentinels_is_missing() -> None:
    store = MemoryStateStore()
    worker = epoch(store)
    worker.check(expect_state=False)
    for key in sentinel_keys("fs")[:5]:
        del store.data[key]
    reading = worker.check(expect_state=True)
    assert reading.found is not None and reading.found.kind == MISSING
    assert "5 of 16" in reading.lost
    assert epoch(store).check(expect_state=True).lost == reading.lost


def test_a_restore_of_older_data_is_rolled_back() -> None:
    store = MemoryStateStore()
    worker = epoch(store)
    worker.check(expect_state=False)
    snapshot = dict(store.data)
    worker.check(expect_state=True)
    worker.check(expect_state=True)
    store.data = snapshot  # a replica that lagged, promoted
    reading = worker.check(expect_state=True)
    assert reading.found is not None and reading.found.kind == ROLLED_BACK


def test_an_unreadable_sentinel_is_another_epoch() -> None:
    store = MemoryStateStore()
    worker = epoch(store)
    worker.check(expect_state=False)
    store.data[sentinel_keys("fs")[3]] = (b"\x00junk", float("inf"))
    reading = worker.check(expect_state=True)
    assert reading.found is not None and reading.found.kind == REPLACED


def test_mark_rebuilt_clears_the_loss_without_a_new_one() -> None:
    store = MemoryStateStore()
    a, b = epoch(store), epoch(store)
    a.check(expect_state=False)
    b.check(expect_state=False)
    store.data.clear()
    lost = a.check(expect_state=True)
    b.check(expect_state=True)
    assert lost.lost
    assert mark_rebuilt(store, "fs", TTL_MS) == lost.epoch
    for worker in (a, b, epoch(store)):
        reading = worker.check(expect_state=True)
        assert reading.found is None and reading.lost == "" and reading.epoch == lost.epoch


def test_prefixes_have_epochs_of_their_own() -> None:
    store = MemoryStateStore()
    epoch(store, "one").check(expect_state=False)
    assert epoch(store, "two").check(expect_state=True).found is not None
