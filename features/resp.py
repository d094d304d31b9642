"""Redis commands packed in one native call each.

redis-py packs a command through a Python generator over its arguments (about 1 us
each): a batch's MGET and compare-and-set of a thousand keys spent more time there than
Redis spent running them. hiredis (installed with ``redis[hiredis]``) packs a whole
command natively; without it, redis-py's own packer is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

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
