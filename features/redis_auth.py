"""Credentials and TLS files for a Redis connection, beyond what its URL carries.

A ``rediss://`` URL turns TLS on; redis-py then verifies the server's certificate and host
name (against ``ca_file``, or the system's CAs). ``username``/``password`` authenticate
with ``AUTH`` (an ACL user, or the default user's ``requirepass``). The same options serve a
single Redis and every node of a Redis Cluster.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import redis


@dataclass(frozen=True, repr=False)
class RedisAuth:
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url`` / ``RedisCluster.from_url``."""
        options = {"username": self.username, "password": self.password,
                   "ssl_ca_certs": self.ca_file, "ssl_certfile": self.cert_file,
                   "ssl_keyfile": self.key_file}
        return {key: value for key, value in options.items() if value is not None}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.client_kwargs().items() if k != "password"}
        if self.password is not None:
            shown["password"] = "***"
        return f"RedisAuth({shown})"


NO_AUTH = RedisAuth()


def refusal(exc: BaseException) -> str | None:
    """Why Redis refused us, when retrying with the same settings cannot help: the
    credentials (AUTH), the user's permissions (ACL) or the TLS handshake (an untrusted
    certificate). None for anything else (Redis down, a timeout). Never the password."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis.AuthenticationError):
            return f"refused the credentials: {current}"
        if isinstance(current, redis.exceptions.NoPermissionError):
            return f"refused a command to this user (ACL): {current}"
        if isinstance(current, ssl.SSLCertVerificationError):
            return (f"failed the TLS handshake: {current.reason}: "
                    f"{current.verify_message or current}")
        if isinstance(current, ssl.SSLError):
            return f"failed the TLS handshake: {current.reason or current}"
        current = current.__cause__ or current.__context__
    return None
