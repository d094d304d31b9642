"""A TCP proxy in front of a Kafka-protocol broker that can hold back one client's requests.

Requests are size-prefixed frames whose header carries the sender's ``client.id``; while
``hold(client_id)`` is on, frames of connections opened by that client wait in the proxy,
as if the broker could not take them. Loopback only; threads stop with the proxy."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

from fraudstream import services

HEADER = struct.Struct(">hhih")  # api key, api version, correlation id, client id length


def client_id_of(frame: bytes) -> str:
    if len(frame) < HEADER.size:
        return ""
    *_, length = HEADER.unpack_from(frame)
    if length < 0:
        return ""
    return frame[HEADER.size:HEADER.size + length].decode("utf-8", "replace")


class KafkaProxy:
    def __init__(self, listen_port: int, upstream_port: int) -> None:
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self._held: set[str] = set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", listen_port))
        self._server.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def hold(self, client_id: str) -> None:
        self._held.add(client_id)

    def release(self, client_id: str) -> None:
        self._held.discard(client_id)

    def close(self) -> None:
        self._closed.set()
        for sock in [self._server, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            for target, args in ((self._requests, (client, upstream)),
                                 (self._copy, (upstream, client))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _requests(self, source: socket.socket, sink: socket.socket) -> None:
        client_id = None
        with contextlib.suppress(OSError):
            while not self._closed.is_set():
                size_bytes = _read_exactly(source, 4)
                if size_bytes is None:
                    break
                frame = _read_exactly(source, struct.unpack(">i", size_bytes)[0])
                if frame is None:
                    break
                client_id = client_id or client_id_of(frame)
                while client_id in self._held and not self._closed.is_set():
                    time.sleep(0.01)
                sink.sendall(size_bytes + frame)
        _shut(sink)

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        _shut(sink)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxied_broker() -> Iterator[tuple[str, KafkaProxy]]:
    """An embedded broker of its own whose advertised address is a proxy: every client
    goes through it. Yields the bootstrap address and the proxy."""
    upstream, front = services.free_port(), services.free_port()
    proxy = KafkaProxy(front, upstream)
    argv = [services.tansu_binary(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{upstream}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{front}",
            "--storage-engine", "memory://tansu/"]
    try:
        broker = services.start_process("tansu", argv,
                                        lambda: services.port_answers(upstream))
    except BaseException:
        proxy.close()
        raise
    try:
        yield f"127.0.0.1:{front}", proxy
    finally:
        proxy.close()
        broker.stop()
