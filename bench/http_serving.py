"""``fraudstream bench --only http``: the HTTP scorer under load, beside the bare scorer.

The server (``fraudstream serve``, one process) and the load generator
(``bench.http_load``) run as two processes on loopback, against feature state built
from a simulated history. Each scenario sends a fixed number of requests (one
transaction, or a batch) over 1 or 16 keep-alive connections and reports requests/s,
transactions/s and per-request p50/p99. Beside it, the same request bodies are scored
in this process by the same code without HTTP (decode, one feature fetch, the compiled
model): the gap between the two is what serving costs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

import msgspec
import numpy as np
import pandas as pd

from fraudstream import services
from fraudstream.bench.pipeline import isolated
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.child_process import die_with_parent
from fraudstream.errors import ServiceError
from fraudstream.features.online import OnlineFeatureStore, TransactionBatch
from fraudstream.models.train import train
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.stream.http.keys import create_key
from fraudstream.stream.http.metrics import HttpMetrics
from fraudstream.stream.http.payloads import parse_score_body
from fraudstream.stream.http.service import ScoringService, build_service

_encode = msgspec.json.Encoder().encode
BATCH = 100
CONCURRENCY = (1, 16)


@dataclass(frozen=True)
class Scenario:
    name: str
    per_request: int
    concurrency: int
    requests: int
    workers: int = 1  # server processes


@dataclass(frozen=True)
class Measured:
    scenario: str
    transactions_per_request: int
    concurrency: int
    workers: int
    requests: int
    errors: int
    requests_per_s: float
    transactions_per_s: float
    http_p50_ms: float
    http_p99_ms: float
    bare_p50_ms: float
    bare_p99_ms: float

    @property
    def overhead_p50_ms(self) -> float | None:
        """HTTP p50 less bare p50, with one request in flight (with more, the difference
        is mostly the wait behind the requests ahead)."""
        return self.http_p50_ms - self.bare_p50_ms if self.concurrency == 1 else None


def scenarios(quick: bool) -> list[Scenario]:
    """One transaction and batches, over 1 and 16 connections, then two processes."""
    scale = 1 if quick else 5
    out = []
    for concurrency in CONCURRENCY:
        out.append(Scenario("one transaction", 1, concurrency, 2000 * scale))
        out.append(Scenario(f"batch of {BATCH}", BATCH, concurrency, 200 * scale))
    out.append(Scenario("one transaction", 1, CONCURRENCY[-1], 2000 * scale, workers=2))
    out.append(Scenario(f"batch of {BATCH}", BATCH, CONCURRENCY[-1], 200 * scale, workers=2))
    return out


def _bodies(events: pd.DataFrame, per_request: int, requests: int) -> list[bytes]:
    columns = (events[name].tolist() for name in
               ("transaction_id", "timestamp", "customer_id", "terminal_id", "amount"))
    rows = [{"transaction_id": str(transaction_id), "timestamp": int(timestamp),
             "customer_id": str(customer_id), "terminal_id": str(terminal_id),
             "amount": float(amount)}
            for transaction_id, timestamp, customer_id, terminal_id, amount
            in zip(*columns, strict=True)]
    bodies = []
    for i in range(requests):
        start = (i * per_request) % max(1, len(rows) - per_request)
        chunk = rows[start:start + per_request]
        bodies.append(_encode(chunk[0] if per_request == 1 else {"transactions": chunk}))
    return bodies


def build_state(settings: Settings, history: pd.DataFrame) -> None:
    """The history counted into Redis by the online engine, as a worker would have."""
    store = feature_state_store(settings, timeout_s=5.0)
    features = OnlineFeatureStore(store, settings.redis_prefix, settings.feature_ttl_days)
    for start in range(0, len(history), 500):
        part = history.iloc[start:start + 500]
        batch = TransactionBatch(
            part["customer_id"].astype(str).tolist(), part["terminal_id"].astype(str).tolist(),
            part["timestamp"].to_numpy(np.int64), part["amount"].to_numpy(np.float64),
            np.zeros(len(part), np.int64), np.arange(start, start + len(part), dtype=np.int64))
        _, update = features.fetch(batch)
        features.update(update)
    store.close()


def _start_server(settings: Settings, keys: Path, port: int, log: Path, workers: int,
                  ) -> subprocess.Popen[bytes]:
    env = settings.child_environ()
    env.update({"FRAUDSTREAM_API_KEYS_FILE": str(keys), "FRAUDSTREAM_API_RATE": "1e9",
                "FRAUDSTREAM_API_BURST": "1000000000", "FRAUDSTREAM_LOG_LEVEL": "warning"})
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "fraudstream", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)], env=env, stdout=handle,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"fraudstream serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return process  # 200: an error status raises
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise ServiceError("fraudstream serve did not become ready within 90 s")


class _LoadResult(TypedDict):
    """What ``bench.http_load`` writes."""

    elapsed_s: float
    latencies_ns: list[int]
    statuses: dict[str, int]


def _load(port: int, key: str, bodies: list[bytes], concurrency: int,
          workdir: Path) -> _LoadResult:
    source, result = workdir / "bodies.jsonl", workdir / "result.json"
    source.write_bytes(b"\n".join(bodies) + b"\n")
    subprocess.run([sys.executable, "-m", "fraudstream.bench.http_load", "--port", str(port),
                    "--key", key, "--bodies", str(source), "--concurrency", str(concurrency),
                    "--out", str(result)], check=True, timeout=600,
                   stdin=subprocess.DEVNULL)
    return msgspec.json.decode(result.read_bytes(), type=_LoadResult)


def _bare(service: ScoringService, bodies: list[bytes]) -> np.ndarray:
    """Per-request milliseconds of the same bodies scored in this process: decode, one
    feature fetch and the compiled model (what the server runs for a request)."""
    times = np.empty(len(bodies))
    for i, body in enumerate(bodies):
        started = time.perf_counter()
        parsed = parse_score_body(body, service.limits, int(time.time() * 1000))
        service.scorer.score(parsed.transactions, parsed.timestamps_ms, started)
        times[i] = (time.perf_counter() - started) * 1000.0
    return times


def _measure(scenario: Scenario, port: int, key: str, probe: pd.DataFrame,
             in_process: ScoringService, work: Path) -> Measured:
    bodies = _bodies(probe, scenario.per_request, scenario.requests)
    load = _load(port, key, bodies, scenario.concurrency, work)
    latencies = np.asarray(load["latencies_ns"], dtype=np.float64) / 1e6
    statuses = load["statuses"]
    elapsed = float(load["elapsed_s"])
    bare = _bare(in_process, bodies)
    return Measured(
        scenario.name, scenario.per_request, scenario.concurrency, scenario.workers,
        scenario.requests, scenario.requests - statuses.get("200", 0),
        scenario.requests / elapsed, scenario.requests * scenario.per_request / elapsed,
        float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)),
        float(np.percentile(bare, 50)), float(np.percentile(bare, 99)))


def measure_http(settings: Settings, quick: bool, plan: list[Scenario] | None = None,
                 registry: Path | None = None, customers: int = 5000) -> list[Measured]:
    """Run ``plan`` (default: ``scenarios(quick)``) against a fresh server; a model is
    trained unless ``registry`` holds one."""
    settings = isolated(settings, "http")
    work = Path(tempfile.mkdtemp(prefix="fraudstream-bench-http-"))
    if registry is None:
        registry = work / "registry"
        train(simulate(SimulationConfig(customers=2000, terminals=4000, days=60)), registry)
    settings = settings.replace(model_dir=str(registry))
    days = 8 if quick else 31
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frame = simulate(SimulationConfig(customers=customers, terminals=2 * customers,
                                      days=days, seed=42, start=today - timedelta(days=days)))
    last_day = frame["timestamp"] >= int((today - timedelta(days=1)).timestamp() * 1000)
    build_state(settings, frame[~last_day])
    probe = frame[last_day]
    key, _ = create_key("bench", work / "keys")
    in_process = build_service(settings, HttpMetrics.create(None))
    results = []
    plan = plan or scenarios(quick)
    try:
        for workers in sorted({s.workers for s in plan}):
            port = services.free_port()
            server = _start_server(settings, work / "keys", port, work / "serve.log", workers)
            try:
                _load(port, key, _bodies(probe, 1, 300), 4, work)  # warm-up, not measured
                for scenario in (s for s in plan if s.workers == workers):
                    results.append(_measure(scenario, port, key, probe, in_process, work))
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    finally:
        in_process.model.close()  # its registry follower thread
    return results


def run_http(out: Path, quick: bool, settings: Settings) -> list[Measured]:
    """The section: measure on embedded (or configured) services, print, write files."""
    with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
            services.redis_url(settings.redis_url) as redis_url:
        results = measure_http(settings.replace(kafka_bootstrap=bootstrap,
                                                redis_url=redis_url), quick)
    headers = ["request", "server processes", "connections", "requests/s", "transactions/s",
               "HTTP p50 / p99 ms", "bare p50 / p99 ms", "HTTP cost p50 ms", "errors"]
    rows = [[r.scenario, str(r.workers), str(r.concurrency), f"{r.requests_per_s:,.0f}",
             f"{r.transactions_per_s:,.0f}", f"{r.http_p50_ms:.2f} / {r.http_p99_ms:.2f}",
             f"{r.bare_p50_ms:.2f} / {r.bare_p99_ms:.2f}",
             "-" if r.overhead_p50_ms is None else f"{r.overhead_p50_ms:.2f}",
             str(r.errors)] for r in results]
    print_table(f"HTTP scorer on {os.cpu_count()} cores (load generator, Redis and broker "
                "on the same machine)", headers, rows)
    write_results(out, "http", {"scenarios": [asdict(r) | {"overhead_p50_ms":
                                                           r.overhead_p50_ms}
                                              for r in results]},
                  markdown_table(headers, rows))
    return results
