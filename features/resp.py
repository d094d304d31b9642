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
    connection.send_packed_command(pack_commands(connection, commands), check_health=False)


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
