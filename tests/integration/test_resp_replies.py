"""features.resp.read_replies: a pipeline's replies read in bulk from hiredis's reader are
the ones ``read_response`` gives one at a time, nil replies included, over a reply larger
than one socket read; an error reply raises as it would."""

from __future__ import annotations

import uuid

import pytest
import redis

from fraudstream.features import resp


def test_bulk_replies_equal_read_response_replies(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"resp-{uuid.uuid4().hex}"
    commands: list[resp.Command] = []
    for i in range(3000):  # 3,000 replies: many socket reads
        commands.append(("SET", f"{prefix}:{i}", b"v" * 200, "PX", 60_000))
        commands.append(("GET", f"{prefix}:absent:{i}"))
    try:
        replies = []
        for bulk in (False, True):
            connection = client.connection_pool.get_connection()
            try:
                resp.send(connection, commands)
                replies.append(resp.read_replies(connection, len(commands)) if bulk
                               else [connection.read_response() for _ in commands])
            finally:
                client.connection_pool.release(connection)
        assert replies[0] == replies[1]
        assert replies[1][:2] == [b"OK", None]
    finally:
        client.delete(*[f"{prefix}:{i}" for i in range(3000)])
        client.close()


def test_an_error_reply_raises(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        resp.send(connection, [("PING",), ("NO-SUCH-COMMAND",), ("PING",)])
        with pytest.raises(redis.ResponseError, match="unknown command"):
            resp.read_replies(connection, 3)
    finally:
        connection.disconnect()  # a reply is left unread
        client.connection_pool.release(connection)
        client.close()
