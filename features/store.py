"""Key-value stores for packed feature state: Redis for real, a dict for unit tests.

Both offer the same two calls, each ONE round trip for a whole batch:
``get_many`` (MGET) and ``compare_and_set_many`` (one Lua call that writes each new value
only if the stored one is still what was read, with a TTL on every key). The write can
also be sent ahead (``send_compare_and_set_many``) and its reply read together with the
next batch's ``MGET`` (``get_many_after``): one round trip per batch in the steady state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis

from features import resp
from features.redis_auth import NO_AUTH, RedisAuth

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


class RedisStateStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

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
        return list(self._round_trip(("MGET", *keys)))

    def compare_and_set_many(self, keys: Sequence[bytes], expected: Sequence[bytes | None],
                             values: Sequence[bytes], ttl_ms: int) -> list[int]:
        if not keys:
            return []
        return [int(i) for i in self._round_trip(cas_command(keys, expected, values, ttl_ms))]

    def _round_trip(self, command: resp.Command) -> Any:
        """One command and its reply on a pooled connection, packed natively. A pooled
        connection the server has dropped meanwhile is retried once on a new one (as
        redis-py does); a compare-and-set run twice only finds its own write: a conflict,
        redone without counting anything twice."""
        pool = self._client.connection_pool
        for attempt in (0, 1):
            connection = pool.get_connection()
            try:
                resp.send(connection, [command])
                return connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError):
                connection.disconnect()
                if attempt:
                    raise
            except BaseException:
                connection.disconnect()  # a half-read reply must never be read by another
                raise
            finally:
                pool.release(connection)
        raise AssertionError("unreachable")

    def send_compare_and_set_many(self, keys: Sequence[bytes],
                                  expected: Sequence[bytes | None], values: Sequence[bytes],
                                  ttl_ms: int) -> Conflicts:
        """Send the write on a connection of its own and return at once: Redis runs the
        script while the worker polls and decodes its next batch."""
        if not keys:
            return list
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            resp.send(connection, [cas_command(keys, expected, values, ttl_ms)])
        except BaseException:
            pool.release(connection)
            raise
        return _SentWrite(pool, connection)

    def get_many_after(self, write: Conflicts, keys: Sequence[bytes],
                       ) -> tuple[list[int], list[bytes | None]]:
        if isinstance(write, _SentWrite) and keys:
            return write.then_get_many(keys)
        return write(), self.get_many(keys)

    def close(self) -> None:
        self._client.close()


class _SentWrite:
    """A compare-and-set sent on a connection of its own, its reply not yet read. The
    next MGET goes down the same connection behind it, so Redis runs the two in order
    and both replies come back in one round trip."""

    def __init__(self, pool: redis.ConnectionPool, connection: redis.Connection) -> None:
        self._pool = pool
        self._connection = connection

    def __call__(self) -> list[int]:
        return self._read(())[0]

    def then_get_many(self, keys: Sequence[bytes]) -> tuple[list[int], list[bytes | None]]:
        return self._read(keys)

    def _read(self, keys: Sequence[bytes]) -> tuple[list[int], list[bytes | None]]:
        connection = self._connection
        try:
            if keys:
                resp.send(connection, [("MGET", *keys)])
            conflicts = [int(i) for i in connection.read_response()]
            values = list(connection.read_response()) if keys else []
            return conflicts, values
        except BaseException:
            connection.disconnect()  # a half-read reply must never be read by another
            raise
        finally:
            self._pool.release(connection)


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
