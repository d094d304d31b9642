"""Redis commands packed in one native call each, and their replies read in bulk.

redis-py packs a command through a Python generator over its arguments (about 1 us
each): a batch's MGET and compare-and-set of a thousand keys spent more time there than
Redis spent running them. hiredis (installed with ``redis[hiredis]``) packs a whole
command natively; without it, redis-py's own packer is used. Reading replies one
``read_response`` at a time goes through several layers of redis-py per reply (about
0.6 us each, 620 us for the thousand replies of a batch's write, measured here); hiredis's
reader gives them back in a loop of its own (about 80 us for the same thousand).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser

try:
    from hiredis import pack_command as _pack_native
except ImportError:  # pragma: no cover - hiredis is a pinned dependency
    # Without hiredis the pure-Python packer below is used instead.
    _pack_native = None  # type: ignore[assignment]

Command = tuple[Any, ...]


def pack_commands(connection: redis.Connection, commands: Sequence[Command]) -> list[bytes]:
    """The wire bytes of ``commands`` (bytes, str or int arguments), in order."""
    if _pack_native is None:
        return list(connection.pack_commands(commands))
    return [_pack_native(command) for command in commands]


def send(connection: redis.Connection, commands: Sequence[Command]) -> None:
    """Write ``commands`` down ``connection`` in one write; replies are read later."""
    send_all(connection, b"", commands)


def send_all(connection: redis.Connection, head: bytes | memoryview,
             commands: Sequence[Command] = ()) -> None:
    """Write ``head`` (bytes already packed) and then ``commands`` down ``connection`` in
    one system call where the socket takes it all: redis-py sends a list of packed
    commands one ``sendall`` each (about 10 us a call, 10 ms for a batch's thousand
    guarded writes)."""
    data = b"".join([head, *pack_commands(connection, commands)]) if commands else head
    if data:
        connection.send_packed_command([data], check_health=False)


def send_what_fits(connection: redis.Connection, data: bytes) -> bytes | memoryview:
    """Send what the socket's buffer takes of ``data`` now, without waiting; returns the
    rest, which the caller sends (``send_all``) before it reads a reply. A large write
    then never holds the worker while Redis reads it, and needs no thread. A TLS socket
    cannot send without waiting: it sends everything."""
    sock = _socket(connection)
    if isinstance(sock, ssl.SSLSocket):
        send_all(connection, data)
        return b""
    try:
        sent = sock.send(data, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError, TimeoutError):
        sent = 0
    except OSError as exc:
        connection.disconnect()
        raise redis.ConnectionError(f"error while writing to Redis: {exc}") from exc
    return memoryview(data)[sent:] if sent < len(data) else b""


def _socket(connection: redis.Connection) -> socket.socket:
    """The connection's socket, connecting first if it has none (as redis-py's own
    ``send_packed_command`` does)."""
    if connection._sock is None:
        connection.connect()
    sock = connection._sock
    assert sock is not None, "a connected redis-py connection has a socket"
    return sock


def read_replies(connection: redis.Connection, count: int) -> list[Any]:
    """The next ``count`` replies on ``connection``; an error reply raises, as
    ``read_response`` does (the caller then drops the connection: replies are left
    unread). Falls back to ``read_response`` without redis-py's hiredis parser."""
    parser = getattr(connection, "_parser", None)
    reader = getattr(parser, "_reader", None)
    if not isinstance(parser, _HiredisParser) or reader is None:
        return [connection.read_response() for _ in range(count)]
    replies: list[Any] = []
    while len(replies) < count:
        reply = reader.gets()
        if reply is NOT_ENOUGH_DATA:
            parser.read_from_socket()
        elif isinstance(reply, Exception):  # hiredis returns error replies as exceptions
            raise reply
        else:
            replies.append(reply)
    return replies
