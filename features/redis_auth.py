"""Credentials and TLS files for a Redis connection, beyond what its URL carries.

A ``rediss://`` URL turns TLS on; redis-py then verifies the server's certificate and host
name (against ``ca_file``, or the system's CAs). ``username``/``password`` authenticate
with ``AUTH`` (an ACL user, or the default user's ``requirepass``). The same options serve a
single Redis and every node of a Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
