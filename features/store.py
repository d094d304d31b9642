"""Key-value stores for packed feature state: Redis for real, a dict for unit tests.

Both offer the same two calls, each ONE round trip for a whole batch:
``get_many`` (MGET) and ``compare_and_set_many`` (one Lua call that writes each new value
only if the stored one is still what was read, with a TTL on every key). The write can
also be sent ahead (``send_compare_and_set_many``) and its reply read together with the
next batch's ``MGET`` (``get_many_after``): one round trip per batch in the steady state.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis

from fraudstream.features import resp
from fraudstream.features.redis_auth import NO_AUTH, RedisAuth

# Absent keys are passed as the empty string: a real state is never empty.
CAS_SCRIPT = """
local ttl = ARGV[1]
local conflicts = {}
for i, key in ipairs(KEYS) do
  local expected = ARGV[2 * i]
  local current = redis.call('GET', key)
  if (current == false and expected == '') or current == expected then
    redis.call('SET', key, ARGV[2 * i + 1], 'PX', ttl)
  else
    conflicts[#conflicts + 1] = i - 1
  end
end
return conflicts
"""


Conflicts = Callable[[], list[int]]


class StateStore(Protocol):
    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        """Write values whose key still holds ``expected``; return indices that did not."""
        ...

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Conflicts:
        """Start the same write; the returned call waits for it and gives the conflicts."""
        ...

    def get_many_after(self, write: Conflicts, keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        """Wait for a sent write, then read ``keys``: (the write's conflicts, values)."""
        ...


# A write of at most this many bytes goes with the next read (RedisStateStore._send).
SEND_WITH_NEXT_READ_BYTES = 16 * 1024


class RedisStateStore:
    """``guarded_set``: write with one ``SET ... IFEQ`` (``NX`` for absent keys) per key
    instead of the Lua script; None (the default) uses it when the server has it (valkey
    8.1+, Redis 8.4+): the same compare-and-set per key, which Redis runs in about half
    the time of the script."""

    def __init__(self, client: redis.Redis, guarded_set: bool | None = None) -> None:
        self._client = client
        self._guarded_set = guarded_set
        self._connections = _Connections(client.connection_pool)

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.5,
                 auth: RedisAuth = NO_AUTH) -> RedisStateStore:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s,
                                      **auth.client_kwargs())
        return cls(client)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        return list(self._round_trip([("MGET", *keys)])[0])

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        if not keys:
            return []
        write = self._write(keys, expected, values, ttl_ms)
        return write.conflicts(self._round_trip(write.commands))

    @property
    def guarded_set(self) -> bool:
        """Whether writes are ``SET ... IFEQ`` commands (asks the server once)."""
        if self._guarded_set is None:
            self._guarded_set = supports_guarded_set(self._client)
        return self._guarded_set

    def _write(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
               values: Sequence[bytes], ttl_ms: int) -> GuardedWrite:
        if self.guarded_set:
            return GuardedWrite.of_sets(keys, expected, values, ttl_ms)
        return GuardedWrite.of_script(keys, expected, values, ttl_ms)

    def _round_trip(self, commands: Sequence[resp.Command]) -> list[Any]:
        """Commands and their replies on a pooled connection, packed natively. A pooled
        connection the server has dropped meanwhile is retried once on a new one (as
        redis-py does); a compare-and-set run twice only finds its own write: a conflict,
        redone without counting anything twice."""
        connections = self._connections
        for attempt in (0, 1):
            connection = connections.take()
            try:
                resp.send(connection, commands)
                return resp.read_replies(connection, len(commands))
            except (redis.ConnectionError, redis.TimeoutError):
                connection.disconnect()
                if attempt:
                    raise
            except BaseException:
                connection.disconnect()  # a half-read reply must never be read by another
                raise
            finally:
                connections.give(connection)
        raise AssertionError("unreachable")

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Conflicts:
        """Start the write on a connection of its own and return at once (see ``_send``)."""
        if not keys:
            return list
        return self._send(self._write(keys, expected, values, ttl_ms))

    def send_packed_sets(self, packed: bytes, count: int) -> Conflicts:
        """The same, for ``count`` guarded SETs already packed (``features.resp_pack``);
        the conflicts are positions among them."""
        if not count:
            return list
        return self._send(GuardedWrite(None, script=False, packed=packed, replies=count))

    def _send(self, write: GuardedWrite) -> Conflicts:
        """A small write waits on its connection to go down the socket with the next read
        (one system call and one wake-up of Redis instead of two, about 80 us here); a
        large one is sent now, as far as the socket takes it, so that Redis runs it while
        the worker polls and decodes its next batch."""
        connections = self._connections
        connection = connections.take()
        try:
            data = write.packed_for(connection)
            rest = data if len(data) <= SEND_WITH_NEXT_READ_BYTES else resp.send_what_fits(
                connection, data)
        except BaseException:
            connection.disconnect()
            connections.give(connection)
            raise
        return _SentWrite(connections, connection, write, rest)

    def get_many_after(self, write: Conflicts, keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        if isinstance(write, _SentWrite) and keys:
            return write.then_get_many(keys)
        return write(), self.get_many(keys)

    def close(self) -> None:
        self._client.close()


class _SentWrite:
    """A compare-and-set sent on a connection of its own, its replies not yet read. The
    next MGET goes down the same connection behind it, so Redis runs the two in order
    and all replies come back in one round trip."""

    def __init__(self, connections: _Connections, connection: redis.Connection,
                 write: GuardedWrite, rest: bytes | memoryview = b"") -> None:
        self._connections = connections
        self._connection = connection
        self._write = write
        self._rest = rest  # what the socket did not take at once: sent before any read

    def __call__(self) -> list[int]:
        return self._read(())[0]

    def then_get_many(self, keys: Sequence[bytes]) -> tuple[list[int], list[bytes | None]]:
        return self._read(keys)

    def _read(self, keys: Sequence[bytes]) -> tuple[list[int], list[bytes | None]]:
        connection = self._connection
        try:
            if keys or self._rest:
                resp.send_all(connection, self._rest, [("MGET", *keys)] if keys else [])
            count = self._write.replies
            replies = resp.read_replies(connection, count + 1 if keys else count)
            values = list(replies.pop()) if keys else []
            return self._write.conflicts(replies), values
        except BaseException:
            connection.disconnect()  # a half-read reply must never be read by another
            raise
        finally:
            self._connections.give(connection)


class _Connections:
    """The store's own connection, kept out of the pool while the store lives: taking a
    pooled connection asks its socket whether data is waiting and giving it back does more
    (about 40 us a round trip here). Another comes from the pool while the own one is
    taken (a write whose replies are not read yet, or another thread's round trip). A
    connection is disconnected after any error, so none is ever left with unread data."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._own: redis.Connection | None = None
        self._taken = False
        self._lock = threading.Lock()

    def take(self) -> redis.Connection:
        with self._lock:
            if not self._taken:
                self._taken = True
                if self._own is None:
                    try:
                        self._own = self._pool.get_connection()
                    except BaseException:
                        self._taken = False
                        raise
                return self._own
        return self._pool.get_connection()

    def give(self, connection: redis.Connection) -> None:
        if connection is self._own:
            self._taken = False
        else:
            self._pool.release(connection)


class GuardedWrite:
    """A batch's compare-and-set as the commands that make it, and how their replies give
    the positions that conflicted (the stored value was no longer the one read)."""

    def __init__(self, commands: list[resp.Command] | None, script: bool,
                 packed: bytes | None = None, replies: int = 0) -> None:
        self.commands = commands or []
        self._script = script
        self._packed = packed
        self.replies = replies if packed is not None else len(self.commands)

    def packed_for(self, connection: redis.Connection) -> bytes:
        """The write's bytes on the wire."""
        if self._packed is not None:
            return self._packed
        return b"".join(resp.pack_commands(connection, self.commands))

    @classmethod
    def of_script(cls, keys: Sequence[bytes], expected: Sequence[bytes | None],
                  values: Sequence[bytes], ttl_ms: int) -> GuardedWrite:
        """One EVAL of CAS_SCRIPT: it replies with the conflicting positions."""
        return cls([cas_command(keys, expected, values, ttl_ms)], script=True)

    @classmethod
    def of_sets(cls, keys: Sequence[bytes], expected: Sequence[bytes | None],
                values: Sequence[bytes], ttl_ms: int) -> GuardedWrite:
        """One SET per key, only if it still holds what was read (IFEQ) or, read absent,
        is still absent (NX): each replies OK, or nil when it conflicted."""
        if not len(keys) == len(expected) == len(values):
            raise ValueError("keys, expected and values differ in length")
        return cls([("SET", key, new, "NX", "PX", ttl_ms) if old is None
                    else ("SET", key, new, "IFEQ", old, "PX", ttl_ms)
                    for key, old, new in zip(keys, expected, values, strict=True)],
                   script=False)

    def conflicts(self, replies: list[Any]) -> list[int]:
        if self._script:
            return [int(i) for i in replies[0]]
        return [i for i, reply in enumerate(replies) if reply is None]


def supports_guarded_set(client: redis.Redis) -> bool:
    """Whether the server has ``SET ... IFEQ`` (valkey 8.1+, Redis 8.4+), from INFO; a
    server that will not say gets the Lua script, which every version runs."""
    try:
        info = client.info("server")
    except redis.ResponseError:
        return False
    if "valkey_version" in info:
        return _version(info["valkey_version"]) >= (8, 1)
    return _version(info.get("redis_version", "0")) >= (8, 4)


def _version(text: object) -> tuple[int, ...]:
    parts = []
    for part in str(text).split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def cas_args(expected: Sequence[bytes | None], values: Sequence[bytes],
             ttl_ms: int) -> list[bytes | int]:
    """The script's ARGV: the TTL, then (expected, new) per key; absent as b""."""
    if len(expected) != len(values):
        raise ValueError("expected and values differ in length")
    args: list[bytes | int] = [b""] * (2 * len(values) + 1)
    args[0] = ttl_ms
    args[1::2] = [old or b"" for old in expected]
    args[2::2] = values
    return args


def cas_command(keys: Sequence[bytes], expected: Sequence[bytes | None],
                values: Sequence[bytes], ttl_ms: int) -> resp.Command:
    """The whole compare-and-set of ``keys`` as one EVAL."""
    return ("EVAL", CAS_SCRIPT, len(keys), *keys, *cas_args(expected, values, ttl_ms))


class MemoryStateStore:
    """In-memory twin of RedisStateStore for pure-logic tests (TTL honoured lazily)."""

    def __init__(self) -> None:
        self.data: dict[bytes, tuple[bytes, float]] = {}

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        now = time.monotonic()
        out: list[bytes | None] = []
        for key in keys:
            entry = self.data.get(key)
            out.append(entry[0] if entry and entry[1] > now else None)
        return out

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        current = self.get_many(keys)
        conflicts = []
        deadline = time.monotonic() + ttl_ms / 1000.0
        for i, (key, old, new) in enumerate(zip(keys, expected, values, strict=True)):
            if current[i] == old:
                self.data[key] = (new, deadline)
            else:
                conflicts.append(i)
        return conflicts

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Conflicts:
        conflicts = self.compare_and_set_many(keys, expected, values, ttl_ms)
        return lambda: conflicts

    def get_many_after(self, write: Conflicts, keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        return write(), self.get_many(keys)
