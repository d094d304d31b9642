"""features.cluster_store.ClusterStateStore on a real three-node valkey cluster: the
StateStore semantics of RedisStateStore, one round trip per batch, retries after a
MOVED, a NOSCRIPT or a lost connection, and the online feature engine on top of it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster

from fraudstream.features.cluster_store import ClusterStateStore, state_store_from_url
from fraudstream.features.definitions import DAY_MS
from fraudstream.features.epoch import MISSING, StateEpoch, mark_rebuilt, sentinel_keys
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.features.store import MemoryStateStore, RedisStateStore
from fraudstream.services import free_port

TTL_MS = 60_000
PAUSE_MS = 2500


@pytest.fixture
def store(redis_cluster_url: str) -> Iterator[ClusterStateStore]:
    state_store = ClusterStateStore.from_url(redis_cluster_url)
    yield state_store
    state_store.close()


@pytest.fixture
def nodes(store: ClusterStateStore) -> Iterator[dict[int, redis.Redis]]:
    """A plain client of each node, by port."""
    clients = {node.port: redis.Redis(host=node.host, port=node.port)
               for node in store.client.get_primaries()}
    yield clients
    for client in clients.values():
        client.close()


def keys(n: int) -> list[bytes]:
    prefix = uuid.uuid4().hex.encode()
    return [prefix + b":" + str(i).encode() for i in range(n)]


def values(tag: bytes, n: int) -> list[bytes]:
    return [tag + str(i).encode() for i in range(n)]


def port_of(store: ClusterStateStore, key: bytes) -> int:
    return int(store.client.get_node_from_key(key).port)


# -- semantics ------------------------------------------------------------------------

def test_a_batch_lands_on_all_three_nodes(store: ClusterStateStore,
                                          nodes: dict[int, redis.Redis]) -> None:
    k = keys(60)
    assert store.compare_and_set_many(k, [None] * 60, values(b"v", 60), TTL_MS) == []
    prefix = k[0].split(b":")[0]
    held = {port: set(client.scan_iter(match=prefix + b":*", count=1000))
            for port, client in nodes.items()}
    assert len(nodes) == 3
    assert all(held.values()), f"a node holds none of the batch: {held}"
    assert set().union(*held.values()) == set(k)
    for port, node_keys in held.items():
        assert {port_of(store, key) for key in node_keys} == {port}


def test_get_many_keeps_the_callers_order_with_missing_keys(store: ClusterStateStore,
                                                            ) -> None:
    k = keys(40)
    for i in range(0, 40, 3):
        store.client.set(k[i], b"x" + str(i).encode())
    asked = [*reversed(k), k[3], k[3]]  # any order, duplicates too
    expected = [b"x" + str(i).encode() if i % 3 == 0 else None for i in reversed(range(40))]
    assert store.get_many(asked) == [*expected, b"x3", b"x3"]
    assert store.get_many([]) == []


def test_compare_and_set_writes_with_a_ttl_and_reports_conflicts_by_index(
        store: ClusterStateStore) -> None:
    k = keys(30)
    first = values(b"a", 30)
    assert store.compare_and_set_many(k, [None] * 30, first, TTL_MS) == []
    assert store.get_many(k) == first
    for key in k:
        assert 0 < store.client.pttl(key) <= TTL_MS
    # Another client changes two keys (on whichever nodes they live) and removes one.
    store.client.set(k[4], b"theirs")
    store.client.set(k[21], b"theirs")
    store.client.delete(k[9])
    second = values(b"b", 30)
    conflicts = store.compare_and_set_many(k, first, second, TTL_MS)
    assert conflicts == [4, 9, 21]
    stored = store.get_many(k)
    assert stored == [b"theirs" if i in (4, 21) else None if i == 9 else second[i]
                      for i in range(30)]
    assert store.client.pttl(k[4]) == -1  # a conflicting key is left alone
    # An absent key is expected as None.
    assert store.compare_and_set_many([k[9]], [None], [b"new"], TTL_MS) == []
    assert store.compare_and_set_many([], [], [], TTL_MS) == []


def test_a_sent_write_and_the_next_read_come_back_together(store: ClusterStateStore) -> None:
    k = keys(40)
    store.client.set(k[17], b"someone else")
    sent = store.send_compare_and_set_many(k[:30], [None] * 30, values(b"s", 30), TTL_MS)
    conflicts, got = store.get_many_after(sent, k)
    assert conflicts == [17]
    assert got == [b"someone else" if i == 17 else b"s" + str(i).encode() if i < 30 else None
                   for i in range(40)]
    # Called on its own, a sent write gives its conflicts too.
    sent = store.send_compare_and_set_many(k[:30], got[:30], values(b"t", 30), TTL_MS)
    assert sent() == []
    assert store.get_many(k[:30]) == values(b"t", 30)
    # Nothing to write, or nothing to read.
    assert store.get_many_after(store.send_compare_and_set_many([], [], [], TTL_MS), k[:2]) \
        == ([], [b"t0", b"t1"])
    sent = store.send_compare_and_set_many(k[:1], [b"t0"], [b"u0"], TTL_MS)
    assert store.get_many_after(sent, []) == ([], [])
    assert store.get_many(k[:1]) == [b"u0"]


# -- round trips ----------------------------------------------------------------------

@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch, nodes: dict[int, redis.Redis],
         ) -> list[tuple[int, str]]:
    """(port, "send" | "read") for every write to and reply from a cluster node."""
    events: list[tuple[int, str]] = []
    cls = redis.connection.Connection

    def spy(name: str, method: Callable[..., object]) -> Callable[..., object]:
        def wrapper(self: redis.connection.Connection, *args: object,
                    **kwargs: object) -> object:
            if self.port in nodes:
                events.append((self.port, name))
            return method(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(cls, "send_packed_command", spy("send", cls.send_packed_command))
    monkeypatch.setattr(cls, "read_response", spy("read", cls.read_response))
    return events


def assert_one_round_trip(events: list[tuple[int, str]], replies: int) -> None:
    sends = [port for port, kind in events if kind == "send"]
    assert len(sends) == len(set(sends)) == 3, f"not one write per node: {events}"
    first_read = next(i for i, (_, kind) in enumerate(events) if kind == "read")
    assert first_read == len(sends), f"a reply was awaited before every node was sent to: {events}"
    assert len(events) - first_read == replies, "one reply per slot command, no more"


def test_each_call_costs_one_round_trip(store: ClusterStateStore,
                                        wire: list[tuple[int, str]]) -> None:
    k = keys(90)
    n_slots = len({store.client.keyslot(key) for key in k})
    # Warm up: connections opened (their handshake is traffic too), script loaded.
    store.compare_and_set_many(k, [None] * 90, values(b"w", 90), TTL_MS)
    store.get_many(k)

    wire.clear()
    assert store.get_many(k) == values(b"w", 90)
    assert_one_round_trip(wire, n_slots)

    wire.clear()
    assert store.compare_and_set_many(k, values(b"w", 90), values(b"x", 90), TTL_MS) == []
    assert_one_round_trip(wire, n_slots)

    wire.clear()
    sent = store.send_compare_and_set_many(k, values(b"x", 90), values(b"y", 90), TTL_MS)
    assert [kind for _, kind in wire] == ["send"] * 3  # no reply awaited yet
    wire.clear()
    assert store.get_many_after(sent, k) == ([], values(b"y", 90))
    assert_one_round_trip(wire, 2 * n_slots)


# -- failures and retries -------------------------------------------------------------

def test_a_stale_slot_map_is_refreshed_after_moved(store: ClusterStateStore) -> None:
    k = keys(30)
    assert store.compare_and_set_many(k, [None] * 30, values(b"m", 30), TTL_MS) == []
    manager = store.client.nodes_manager
    primaries = store.client.get_primaries()
    owners = {store.client.keyslot(key): manager.slots_cache[store.client.keyslot(key)][0].name
              for key in k[:10]}
    for slot, owner in owners.items():  # these slots now point at a wrong node
        manager.slots_cache[slot] = [next(n for n in primaries if n.name != owner)]
    assert store.compare_and_set_many(k, values(b"m", 30), values(b"n", 30), TTL_MS) == []
    assert {slot: manager.slots_cache[slot][0].name for slot in owners} == owners
    for slot, owner in owners.items():
        manager.slots_cache[slot] = [next(n for n in primaries if n.name != owner)]
    assert store.get_many(k) == values(b"n", 30)
    assert {slot: manager.slots_cache[slot][0].name for slot in owners} == owners


def test_a_slot_being_migrated_is_followed_with_asking(
        store: ClusterStateStore, nodes: dict[int, redis.Redis]) -> None:
    k = keys(12)
    moving, slot = k[0], store.client.keyslot(k[0])
    k = [key for key in k if store.client.keyslot(key) != slot or key == moving]
    source = port_of(store, moving)
    target = next(port for port in nodes if port != source)
    ids = {port: client.execute_command("CLUSTER MYID") for port, client in nodes.items()}
    nodes[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
    nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
    try:
        # Absent from the source, the key is to be written at the target (ASK).
        assert store.compare_and_set_many(k, [None] * len(k), values(b"v", len(k)),
                                          TTL_MS) == []
        assert store.get_many(k) == values(b"v", len(k))
        with nodes[target].pipeline(transaction=False) as pipe:
            pipe.execute_command("ASKING")
            pipe.get(moving)
            assert pipe.execute()[1] == b"v0"
        assert nodes[source].execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
    finally:
        with nodes[target].pipeline(transaction=False) as pipe:
            pipe.execute_command("ASKING")
            pipe.delete(moving)
            pipe.execute()
        for port in (source, target):
            nodes[port].execute_command("CLUSTER SETSLOT", slot, "STABLE")


def test_a_flushed_script_is_sent_again(store: ClusterStateStore,
                                        nodes: dict[int, redis.Redis]) -> None:
    k = keys(20)
    assert store.compare_and_set_many(k, [None] * 20, values(b"a", 20), TTL_MS) == []
    for client in nodes.values():
        client.script_flush()
    store.client.set(k[5], b"theirs")
    assert store.compare_and_set_many(k, values(b"a", 20), values(b"b", 20), TTL_MS) == [5]
    assert store.get_many(k) == [b"theirs" if i == 5 else b"b" + str(i).encode()
                                 for i in range(20)]
    # A read sent behind a write that found no script must still see the write.
    for client in nodes.values():
        client.script_flush()
    sent = store.send_compare_and_set_many(k[6:], values(b"b", 20)[6:], values(b"c", 14),
                                           TTL_MS)
    assert store.get_many_after(sent, k) == ([], [*store.get_many(k[:6]), *values(b"c", 14)])


def test_an_error_reply_raises_and_leaves_every_connection_in_step(
        store: ClusterStateStore, nodes: dict[int, redis.Redis]) -> None:
    k = keys(20)
    assert store.compare_and_set_many(k, [None] * 20, values(b"old", 20), TTL_MS) == []
    for client in nodes.values():
        client.config_set("maxmemory", 1)
    try:
        sent = store.send_compare_and_set_many(k, values(b"old", 20), values(b"new", 20),
                                               TTL_MS)
        with pytest.raises(redis.ResponseError):
            store.get_many_after(sent, k)
        with pytest.raises(redis.ResponseError):
            store.compare_and_set_many(k, values(b"old", 20), values(b"new", 20), TTL_MS)
    finally:
        for client in nodes.values():
            client.config_set("maxmemory", 0)
    for _ in range(3):  # no reply was left behind on a pooled connection
        assert store.get_many(k) == values(b"old", 20)


def test_a_node_that_stops_answering_is_an_error_and_poisons_no_connection(
        redis_cluster_url: str, store: ClusterStateStore, nodes: dict[int, redis.Redis]) -> None:
    k = keys(30)
    assert store.compare_and_set_many(k, [None] * 30, values(b"a", 30), TTL_MS) == []
    paused = port_of(store, k[0])
    nodes[paused].execute_command("CLIENT PAUSE", PAUSE_MS, "ALL")
    started = time.monotonic()
    sent = store.send_compare_and_set_many(k, values(b"a", 30), values(b"b", 30), TTL_MS)
    with pytest.raises(redis.RedisError):
        store.get_many_after(sent, k)
    assert time.monotonic() - started < PAUSE_MS / 1000, "the timeout did not bound the call"
    nodes[paused].ping()  # answers when the pause is over
    # The answering nodes' writes stand; the paused node's may or may not have run.
    # Either way the store now reads what a fresh client reads, again and again.
    with RedisCluster.from_url(redis_cluster_url) as fresh:
        truth = [fresh.get(key) for key in k]
    assert [v[:1] if v else v for v in truth] == [
        b"b" if port_of(store, key) != paused else truth[i][:1] for i, key in enumerate(k)]
    for _ in range(3):
        assert store.get_many(k) == truth


def test_replies_left_unread_never_reach_a_later_call(
        redis_cluster_url: str, nodes: dict[int, redis.Redis]) -> None:
    store = ClusterStateStore.from_url(redis_cluster_url, timeout_s=1.0)
    k = keys(30)
    assert store.compare_and_set_many(k, [None] * 30, values(b"a", 30), TTL_MS) == []
    paused = port_of(store, k[0])
    on_paused = [key for key in k if port_of(store, key) == paused]
    manager = store.client.nodes_manager
    uncovered = next(key for key in keys(100)
                     if store.client.keyslot(key) not in {store.client.keyslot(x) for x in k})
    slot = store.client.keyslot(uncovered)
    # The paused node holds its reply back until the next call has sent its own request.
    nodes[paused].execute_command("CLIENT PAUSE", 300, "ALL")
    sent = store.send_compare_and_set_many(k, values(b"a", 30), values(b"b", 30), TTL_MS)
    owner = manager.slots_cache.pop(slot)
    try:
        with pytest.raises(redis.ConnectionError):  # gives up before reading a reply
            store.get_many_after(sent, [*k, uncovered])
    finally:
        manager.slots_cache[slot] = owner
    got = store.get_many(on_paused)  # must not be handed the write's reply
    with RedisCluster.from_url(redis_cluster_url) as fresh:
        assert got == [fresh.get(key) for key in on_paused]
    store.close()


def test_an_unreachable_cluster_raises_redis_errors_not_at_construction() -> None:
    store = ClusterStateStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    with pytest.raises(redis.ConnectionError):
        store.get_many([b"a", b"b"])
    with pytest.raises(redis.ConnectionError):
        store.send_compare_and_set_many([b"a"], [None], [b"x"], TTL_MS)
    store.close()


def test_state_store_from_url_picks_the_store(redis_cluster_url: str) -> None:
    single = state_store_from_url("redis://127.0.0.1:1/0", cluster=False)
    assert isinstance(single, RedisStateStore)
    single.close()
    clustered = state_store_from_url(redis_cluster_url, cluster=True, timeout_s=1.0)
    assert isinstance(clustered, ClusterStateStore)
    k = keys(5)
    assert clustered.compare_and_set_many(k, [None] * 5, values(b"c", 5), TTL_MS) == []
    assert clustered.get_many(k) == values(b"c", 5)
    clustered.close()


# -- the online feature engine on a cluster ---------------------------------------------

def batches(n_batches: int, size: int, seed: int) -> list[TransactionBatch]:
    rng = np.random.default_rng(seed)
    day = 20_000 * DAY_MS
    out, offsets, clock = [], np.zeros(3, np.int64), day
    for _ in range(n_batches):
        partitions = rng.integers(0, 3, size)
        batch_offsets = np.empty(size, np.int64)
        for i, partition in enumerate(partitions):
            batch_offsets[i] = offsets[partition]
            offsets[partition] += 1
        clock += int(rng.integers(1, 3 * 3_600_000))
        out.append(TransactionBatch(
            [f"cust-{c}" for c in rng.integers(0, 150, size)],
            [f"term-{t}" for t in rng.integers(0, 60, size)],
            np.sort(clock + rng.integers(0, 3_600_000, size)).astype(np.int64),
            np.round(rng.gamma(2.0, 40.0, size), 2),
            partitions.astype(np.int64), batch_offsets))
    return out


def run_worker(store: ClusterStateStore | MemoryStateStore, prefix: str,
               stream: list[TransactionBatch], zombie_at: int) -> tuple[list[np.ndarray], int]:
    """Batches as the worker runs them (each write completed by the next read), with a
    zombie worker applying batch ``zombie_at`` between its read and its write."""
    online = OnlineFeatureStore(store, prefix=prefix)
    zombie = OnlineFeatureStore(store, prefix=prefix)
    matrices = []
    for i, batch in enumerate(stream):
        matrix, pending = online.fetch(batch)
        if i == zombie_at:
            zombie.update(zombie.fetch(batch)[1])
        online.begin_update(pending)
        matrices.append(matrix)
    online.complete_update()
    return matrices, online.take_conflicts()


def test_online_features_on_a_cluster_match_the_memory_store(
        store: ClusterStateStore, nodes: dict[int, redis.Redis]) -> None:
    stream = batches(8, 120, seed=7)
    prefix = uuid.uuid4().hex
    memory = MemoryStateStore()
    expected, expected_retries = run_worker(memory, prefix, stream, zombie_at=4)
    got, retries = run_worker(store, prefix, stream, zombie_at=4)
    assert expected_retries > 0, "the zombie was meant to cause conflicts"
    assert retries == expected_retries
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)
    stored_keys = sorted(memory.data)
    assert len(stored_keys) > 150
    assert dict(zip(stored_keys, store.get_many(stored_keys), strict=True)) \
        == {key: value for key, (value, _) in memory.data.items()}
    assert len({port_of(store, key) for key in stored_keys}) == 3


def test_the_epoch_finds_one_shard_losing_its_data(
        store: ClusterStateStore, nodes: dict[int, redis.Redis]) -> None:
    """Every primary holds sentinels of the state's epoch, so one primary restarted empty
    (here: our keys deleted on it) is found by the next check of any worker."""
    prefix = uuid.uuid4().hex
    worker = StateEpoch(store, prefix, TTL_MS)
    assert worker.check(expect_state=False).found is None
    owners = {store.client.get_node_from_key(key).port: key
              for key in sentinel_keys(prefix)}
    assert owners.keys() == nodes.keys(), "a shard without a sentinel"
    port = next(iter(nodes))
    lost = [k for k in sentinel_keys(prefix) if store.client.get_node_from_key(k).port == port]
    for key in lost:
        nodes[port].delete(key)
    reading = worker.check(expect_state=True)
    assert reading.found is not None and reading.found.kind == MISSING
    assert f"{len(lost)} of 16" in reading.lost
    assert StateEpoch(store, prefix, TTL_MS).check(expect_state=True).lost == reading.lost
    assert mark_rebuilt(store, prefix, TTL_MS) == reading.epoch
    assert worker.check(expect_state=True).lost == ""
