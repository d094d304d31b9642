"""A TLS-terminating TCP proxy on loopback: clients speak TLS to it (its certificate is
one the test generated), it speaks plain TCP to the upstream server.

Tansu 0.6.0 cannot serve TLS itself (see tests/integration/test_kafka_security.py), so
a broker advertised at this proxy's port is a Kafka-over-TLS endpoint for real: every
byte a client sends and receives crosses a TLS session that its own CA must verify.
One event loop on one thread serves every connection; it stops with the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path


class TlsProxy:
    def __init__(self, listen_port: int, upstream_port: int, cert: Path, key: Path) -> None:
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.connections = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(cert), str(key))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, "127.0.0.1", self.listen_port, ssl=self._context,
            ssl_handshake_timeout=5))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_in, upstream_out = await asyncio.open_connection("127.0.0.1",
                                                                      self.upstream_port)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(_pump(client_in, upstream_out), _pump(upstream_in, client_out),
                             return_exceptions=True)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()
