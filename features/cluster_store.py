"""Feature state on a Redis Cluster, with the calls and round trips of RedisStateStore.

A cluster refuses MGET and EVAL over keys of different hash slots, so a batch becomes one
command per slot. The commands for a node go down one connection of that node in one
write, and every node is written to before any reply is read: a batch costs one round
trip, however many nodes it touches. Each key's compare-and-set stays atomic, the batch
as a whole does not (conflicts were always per key).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

from fraudstream.features import resp
from fraudstream.features.redis_auth import NO_AUTH, RedisAuth
from fraudstream.features.store import CAS_SCRIPT, Conflicts, RedisStateStore, cas_args

_CAS_SHA = hashlib.sha1(CAS_SCRIPT.encode()).hexdigest()

T = TypeVar("T")
N = TypeVar("N", bound=Hashable)
Tag = tuple[int, int]  # (operation kind, slot): which command a reply answers
_READ, _WRITE = 0, 1


# -- pure grouping --------------------------------------------------------------------

def group_by_slot(keys: Sequence[bytes]) -> dict[int, list[int]]:
    """Positions of ``keys`` in each hash slot; slots and positions in first-seen order."""
    slots: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        slots.setdefault(key_slot(key), []).append(position)
    return slots


def group_by_node(items: Iterable[T], node_of: Callable[[T], N]) -> dict[N, list[T]]:
    """``items`` by the node that serves them, in first-seen order."""
    nodes: dict[N, list[T]] = {}
    for item in items:
        nodes.setdefault(node_of(item), []).append(item)
    return nodes


def scatter_values(slots: dict[int, list[int]], replies: dict[int, Sequence[bytes | None]],
                   size: int) -> list[bytes | None]:
    """Per-slot MGET replies as one list in the caller's key order."""
    values: list[bytes | None] = [None] * size
    for slot, positions in slots.items():
        for position, value in zip(positions, replies[slot], strict=True):
            values[position] = value
    return values


def gather_conflicts(slots: dict[int, list[int]], replies: dict[int, Sequence[int]],
                     ) -> list[int]:
    """Per-slot conflicts (indices into the slot's keys) as sorted caller indices."""
    return sorted(slots[slot][int(i)] for slot in slots for i in replies[slot])


# -- one batch call, split by slot ----------------------------------------------------

class _Read:
    kind = _READ

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = keys
        self.slots = group_by_slot(keys)

    def command(self, slot: int, retry: bool) -> tuple[Any, ...]:
        return ("MGET", *(self.keys[i] for i in self.slots[slot]))

    def result(self, replies: dict[int, Any]) -> list[bytes | None]:
        return scatter_values(self.slots, replies, len(self.keys))


class _Write:
    kind = _WRITE

    def __init__(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                 values: Sequence[bytes], ttl_ms: int) -> None:
        if not len(keys) == len(expected) == len(values):
            raise ValueError("keys, expected and values differ in length")
        self.keys, self.expected, self.values, self.ttl_ms = keys, expected, values, ttl_ms
        self.slots = group_by_slot(keys)

    def command(self, slot: int, retry: bool) -> tuple[Any, ...]:
        positions = self.slots[slot]
        # A retry may go to a node that never saw the script: send its body then.
        head = ("EVAL", CAS_SCRIPT) if retry else ("EVALSHA", _CAS_SHA)
        return (*head, len(positions), *(self.keys[i] for i in positions),
                *cas_args([self.expected[i] for i in positions],
                           [self.values[i] for i in positions], self.ttl_ms))

    def result(self, replies: dict[int, Any]) -> list[int]:
        return gather_conflicts(self.slots, replies)


_Op = _Read | _Write
_Entry = tuple[redis.ConnectionPool, redis.Connection, list[Tag | None]]


class _Round:
    """Commands sent down one connection per node, their replies not read yet."""

    def __init__(self) -> None:
        self.routes: dict[int, ClusterNode] = {}  # slot -> the node its commands went to
        self._open: dict[str, _Entry] = {}
        self._lost: dict[Tag, Exception] = {}

    def send(self, client: RedisCluster,
             commands: dict[ClusterNode, list[tuple[Tag | None, tuple[Any, ...]]]]) -> None:
        """One write per node. A node that fails only loses its replies (retried later)."""
        try:
            for node, batch in commands.items():
                self._send(client, node, batch)
        except BaseException:
            self.abandon()
            raise

    def _send(self, client: RedisCluster, node: ClusterNode,
              batch: list[tuple[Tag | None, tuple[Any, ...]]]) -> None:
        entry = self._open.get(node.name)
        try:
            if entry is None:
                pool = client.get_redis_connection(node).connection_pool
                entry = self._open[node.name] = (pool, pool.get_connection(), [])
            connection, tags = entry[1], entry[2]
            tags.extend(tag for tag, _ in batch)
            resp.send(connection, [c for _, c in batch])
        except redis.RedisError as exc:
            lost = [tag for tag, _ in batch]
            if entry is not None:
                del self._open[node.name]
                lost = entry[2]
                _drop(entry)
            self._lost.update((tag, exc) for tag in lost if tag is not None)

    def read(self) -> dict[Tag, Any]:
        """Every reply, or the exception that stands for it."""
        replies: dict[Tag, Any] = dict(self._lost)
        try:
            for name in list(self._open):
                pool, connection, tags = self._open[name]
                if _read_replies(connection, tags, replies):
                    del self._open[name]
                    pool.release(connection)
        finally:
            self.abandon()  # whatever was not read to the end
        return replies

    def abandon(self) -> None:
        """Drop every connection with replies still unread."""
        open_, self._open = self._open, {}
        for entry in open_.values():
            _drop(entry)


def _read_replies(connection: redis.Connection, tags: list[Tag | None],
                  replies: dict[Tag, Any]) -> bool:
    """Read one reply per tag; False when the connection broke on the way."""
    for done, tag in enumerate(tags):
        try:
            reply = connection.read_response()
        except ResponseError as exc:
            reply = exc  # an error reply was read whole: the connection is still in step
        except redis.RedisError as exc:
            replies.update((t, exc) for t in tags[done:] if t is not None)
            return False
        if tag is not None:
            replies[tag] = reply
    return True


def _drop(entry: _Entry) -> None:
    pool, connection, _ = entry
    connection.disconnect()  # replies may be pending: nobody else may read them
    pool.release(connection)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Callers take RedisError for "store unavailable"; redis-py's cluster bookkeeping
    raises RedisClusterException, which is not one."""
    try:
        yield
    except RedisClusterException as exc:
        raise redis.ConnectionError(f"redis cluster unavailable: {exc}") from exc


# -- the store ------------------------------------------------------------------------

class ClusterStateStore:
    def __init__(self, client: RedisCluster | Callable[[], RedisCluster]) -> None:
        self._client = client if isinstance(client, RedisCluster) else None
        self._connect = client if not isinstance(client, RedisCluster) else None

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.5,
                 auth: RedisAuth = NO_AUTH) -> ClusterStateStore:
        """A store that connects on first use: like RedisStateStore, a cluster that is
        down at start-up gives RedisErrors, not a failed start. ``auth`` (credentials,
        TLS files) applies to every node."""
        return cls(lambda: RedisCluster.from_url(url, socket_timeout=timeout_s,
                                                 socket_connect_timeout=timeout_s,
                                                 **auth.client_kwargs()))

    @property
    def client(self) -> RedisCluster:
        if self._client is None:
            assert self._connect is not None
            with _unavailable():
                self._client = self._connect()
        return self._client

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        result: list[bytes | None] = self._run(_Read(keys))
        return result

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        if not keys:
            return []
        result: list[int] = self._run(_Write(keys, expected, values, ttl_ms))
        return result

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Conflicts:
        if not keys:
            return list
        write = _Write(keys, expected, values, ttl_ms)
        round_ = _Round()
        with _unavailable():
            self._send(round_, [(write, slot) for slot in write.slots])
        return _SentWrite(self, write, round_)

    def get_many_after(self, write: Conflicts, keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        if isinstance(write, _SentWrite) and write.store is self and keys:
            return write.then_get_many(keys)
        return write(), self.get_many(keys)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _run(self, op: _Op) -> Any:
        round_ = _Round()
        with _unavailable():
            self._send(round_, [(op, slot) for slot in op.slots])
            return self._finish([op], round_.read())[0]

    def _send(self, round_: _Round, items: Sequence[tuple[_Op, int]], retry: bool = False,
              asking: dict[Tag, ClusterNode] | None = None) -> None:
        """Send the command of each (operation, slot) in one write per node. A slot
        already sent in this round goes to the same node, on the same connection, so
        the server runs a read behind the write it must see."""
        client = self.client
        asking = asking or {}

        def node_of(item: tuple[_Op, int]) -> ClusterNode:
            op, slot = item
            node = (asking.get((op.kind, slot)) or round_.routes.get(slot)
                    or client.nodes_manager.get_node_from_slot(slot))
            round_.routes.setdefault(slot, node)
            return node

        commands: dict[ClusterNode, list[tuple[Tag | None, tuple[Any, ...]]]] = {}
        for node, node_items in group_by_node(items, node_of).items():
            batch = commands[node] = []
            for op, slot in node_items:
                if (op.kind, slot) in asking:
                    batch.append((None, ("ASKING",)))
                batch.append(((op.kind, slot), op.command(slot, retry)))
        round_.send(client, commands)

    def _finish(self, ops: Sequence[_Op], replies: dict[Tag, Any]) -> list[Any]:
        """The result of each of ``ops`` (a write before the read that must see it), after
        one retry of the slots that were not answered: on a fresh topology after a
        MOVED or a lost connection, at the new node after an ASK, with the script's body
        after a NOSCRIPT."""
        again: list[tuple[_Op, int]] = []
        asking: dict[Tag, ClusterNode] = {}
        refresh = False
        rewritten: set[int] = set()
        for op in ops:
            for slot in op.slots:
                reply = replies[(op.kind, slot)]
                if op.kind == _READ and slot in rewritten:
                    again.append((op, slot))  # it read the value before the write's retry
                    continue
                if not isinstance(reply, Exception):
                    continue
                if isinstance(reply, AskError) and not isinstance(reply, MovedError):
                    target = self.client.get_node(reply.host, reply.port)
                    if target is not None:
                        asking[(op.kind, slot)] = target
                    refresh |= target is None
                elif isinstance(reply, MovedError | TryAgainError | ClusterDownError):
                    refresh = True
                elif isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError):
                    raise reply
                elif not isinstance(reply, ResponseError):  # the connection was lost
                    refresh = True
                again.append((op, slot))
                if op.kind == _WRITE:
                    rewritten.add(slot)
        if again:
            if refresh:
                self.client.nodes_manager.initialize()
            round_ = _Round()
            self._send(round_, again, retry=True, asking=asking)
            for tag, reply in round_.read().items():
                if isinstance(reply, Exception):
                    raise reply
                replies[tag] = reply
        return [op.result({slot: replies[(op.kind, slot)] for slot in op.slots})
                for op in ops]


class _SentWrite:
    """A compare-and-set sent ahead, its replies not read yet. The next batch's reads go
    down the same connections behind it, so both come back in one round trip."""

    def __init__(self, store: ClusterStateStore, write: _Write, round_: _Round) -> None:
        self.store = store
        self._write = write
        self._round: _Round | None = round_
        self._conflicts: list[int] = []

    def __call__(self) -> list[int]:
        return self._read(None)[0]

    def then_get_many(self, keys: Sequence[bytes]) -> tuple[list[int], list[bytes | None]]:
        return self._read(_Read(keys))

    def _read(self, read: _Read | None) -> tuple[list[int], list[bytes | None]]:
        round_, self._round = self._round, None
        if round_ is None:  # read already: its conflicts stand
            return self._conflicts, self.store.get_many(read.keys) if read else []
        ops: list[_Op] = [self._write]
        with _unavailable():
            if read is not None:
                ops.append(read)
                try:
                    self.store._send(round_, [(read, slot) for slot in read.slots])
                except BaseException:
                    round_.abandon()
                    raise
            results = self.store._finish(ops, round_.read())
        self._conflicts = results[0]
        return results[0], results[1] if read is not None else []


def state_store_from_url(url: str, cluster: bool, timeout_s: float = 0.5,
                         auth: RedisAuth = NO_AUTH) -> RedisStateStore | ClusterStateStore:
    """The store for ``url``: a single Redis, or a cluster that ``url`` is one node of."""
    if cluster:
        return ClusterStateStore.from_url(url, timeout_s, auth)
    return RedisStateStore.from_url(url, timeout_s, auth)
