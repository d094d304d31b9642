"""Redis memory per active customer and per terminal, measured on a private server.

States are packed rings of fixed layout, so their size does not depend on their values:
the benchmark writes realistic random states under the worker's own key scheme, with
the worker's TTL, and reads ``used_memory`` before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import redis

from fraudstream.features import terminal_state
from fraudstream.features.customer_state import RECENT_IDS_BYTES, STATE_DTYPE, VERSION
from fraudstream.features.definitions import DAY_MS, RING_DAYS, TERMINAL_RING_DAYS
from fraudstream.features.online import customer_key, terminal_key

CHUNK = 20_000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class MemoryReport:
    customers: int
    terminals: int
    partitions: int
    customer_value_bytes: int
    terminal_value_bytes: int
    bytes_per_customer: float
    bytes_per_terminal: float
    server: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _customer_states(count: int, rng: np.random.Generator, today: int) -> np.ndarray:
    rows = np.zeros(count, dtype=STATE_DTYPE)
    rows["version"] = VERSION
    rows["partition"] = rng.integers(0, 64, count)
    rows["offset"] = rng.integers(0, 10**9, count)
    rows["last_day"] = today
    rows["last_ts"] = today * DAY_MS + rng.integers(0, DAY_MS, count)
    rows["prev_gap"] = rng.integers(0, 10**8, count)
    rows["counts"] = np.minimum(rng.poisson(2.0, (count, RING_DAYS)), 255)
    rows["cents"] = rows["counts"] * rng.integers(500, 10_000, (count, RING_DAYS))
    return rows


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _write(client: redis.Redis, keys: list[bytes], values: list[bytes], ttl_ms: int) -> None:
    pipe = client.pipeline(transaction=False)
    for key, value in zip(keys, values, strict=True):
        pipe.execute_command("SET", key, value, "PX", ttl_ms)
    pipe.execute()


def measure(url: str, customers: int = 1_000_000, terminals: int = 200_000,
            partitions: int = 8, ttl_days: int = 40, seed: int = 0,
            progress: Progress | None = None) -> MemoryReport:
    """Write ``customers`` customer states and ``terminals`` terminal states (each with
    high-water marks from ``partitions`` partitions) and report bytes per entity."""
    client = redis.Redis.from_url(url)
    try:
        if client.dbsize():
            raise ValueError(f"{url} is not empty: measure on a private server")
        rng = np.random.default_rng(seed)
        today = 20_000
        ttl_ms = ttl_days * DAY_MS
        prefix = b"fs"
        before = _used_memory(client)
        for lo in range(0, customers, CHUNK):
            n = min(CHUNK, customers - lo)
            blob = _customer_states(n, rng, today).tobytes()
            size = STATE_DTYPE.itemsize
            recent = rng.bytes(n * RECENT_IDS_BYTES)  # digests of the last transaction ids
            _write(client, [customer_key(prefix, str(i)) for i in range(lo, lo + n)],
                   [blob[k * size:(k + 1) * size]
                    + recent[k * RECENT_IDS_BYTES:(k + 1) * RECENT_IDS_BYTES]
                    for k in range(n)], ttl_ms)
            if progress:
                progress(lo + n)
        after_customers = _used_memory(client)
        terminal_bytes = 0
        for lo in range(0, terminals, CHUNK):
            n = min(CHUNK, terminals - lo)
            values = []
            for _ in range(n):
                state = terminal_state.TerminalState(
                    last_day=today,
                    counts=rng.poisson(30, TERMINAL_RING_DAYS).tolist(),
                    frauds=[0] * TERMINAL_RING_DAYS,
                    marks={p: int(rng.integers(0, 10**9)) for p in range(partitions)})
                values.append(terminal_state.encode(state))
            terminal_bytes = len(values[-1])
            _write(client, [terminal_key(prefix, f"T{i}") for i in range(lo, lo + n)], values,
                   ttl_ms)
            if progress:
                progress(customers + lo + n)
        after_terminals = _used_memory(client)
        info = client.info("server")
        version = info.get("valkey_version", info.get("redis_version"))
        server = f"{info.get('server_name', 'redis')} {version}"
        return MemoryReport(
            customers=customers, terminals=terminals, partitions=partitions,
            customer_value_bytes=STATE_DTYPE.itemsize + RECENT_IDS_BYTES,
            terminal_value_bytes=terminal_bytes,
            bytes_per_customer=(after_customers - before) / max(1, customers),
            bytes_per_terminal=(after_terminals - after_customers) / max(1, terminals),
            server=server)
    finally:
        client.close()
