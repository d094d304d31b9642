"""An embedded Tansu broker reachable only over TLS (through tests/tls_proxy.py), and
optionally requiring SASL authentication (``--authentication``), on loopback ports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from fraudstream import services
from tests.certificates import Issued
from tests.tls_proxy import TlsProxy


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str  # the TLS proxy: the address the broker advertises
    plain_port: int  # Tansu's own plaintext listener, behind the proxy
    proxy: TlsProxy


@contextlib.contextmanager
def tls_broker(server: Issued, authentication: bool = False) -> Iterator[SecureBroker]:
    """Tansu advertising the proxy's port, so that every client, after bootstrap too,
    connects through TLS."""
    upstream, front = services.free_port(), services.free_port()
    argv = [services.tansu_binary(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{upstream}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{front}",
            "--storage-engine", "memory://tansu/",
            *(["--authentication"] if authentication else [])]
    broker = services.start_process("tansu", argv, lambda: services.port_answers(upstream))
    proxy = TlsProxy(front, upstream, server.cert, server.key)
    try:
        yield SecureBroker(f"127.0.0.1:{front}", upstream, proxy)
    finally:
        proxy.close()
        broker.stop()
