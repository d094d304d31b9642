"""Load generator for the HTTP benchmark, run as its own process.

``python -m fraudstream.bench.http_load --port P --key K --bodies FILE --concurrency C --out FILE``
sends every body of FILE (JSON lines, one request body each) once, over C keep-alive
connections to 127.0.0.1:P, each connection with one request in flight, and writes the
per-request latencies (send to last byte of the answer), the status codes and the
elapsed time as JSON. A bare HTTP/1.1 client on asyncio: a general-purpose one would
spend more CPU per request than the server does, on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from pathlib import Path

import uvloop

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT_S = 30.0


def request_bytes(path: str, key: str, body: bytes) -> bytes:
    """One keep-alive POST, ready to write."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _connection(port: int, requests: list[bytes], order: itertools.count[int],
                      latencies: list[int], statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        while (i := next(order)) < len(requests):
            started = time.perf_counter_ns()
            writer.write(requests[i])
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT_S)
            latencies[i] = time.perf_counter_ns() - started
            statuses[status] += 1
    finally:
        writer.close()


async def drive(port: int, path: str, key: str, bodies: list[bytes],
                concurrency: int) -> dict[str, object]:
    """Send every body once over ``concurrency`` connections; latencies by body."""
    requests = [request_bytes(path, key, body) for body in bodies]
    latencies = [0] * len(requests)
    statuses: Counter[int] = Counter()
    order = itertools.count()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests, order, latencies, statuses)
                           for _ in range(concurrency)))
    return {"elapsed_s": time.perf_counter() - started, "latencies_ns": latencies,
            "statuses": {str(k): v for k, v in statuses.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/score")
    parser.add_argument("--key", required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line]
    result = uvloop.run(drive(args.port, args.path, args.key, bodies, args.concurrency))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
