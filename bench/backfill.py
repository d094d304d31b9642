"""``bench --only backfill``: the time to materialize the default simulated history (about
1.8 M transactions, 5,000 customers, 10,000 terminals) from a Parquet file into a private
Redis, by the code ``fraudstream backfill`` runs: read and check, build, write."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fraudstream import services
from fraudstream.bench.report import markdown_table, print_table, write_results
from fraudstream.features.backfill import build_states, write_states
from fraudstream.features.cluster_store import state_store_from_url
from fraudstream.history.files import read_history
from fraudstream.simulator.generator import SimulationConfig, simulate

TARGET_S = 60.0
TTL_DAYS = 40


def run_backfill(out: Path, quick: bool) -> dict[str, object]:
    config = (SimulationConfig(customers=1_000, terminals=2_000, days=60) if quick
              else SimulationConfig())
    frame = simulate(config)
    url, server = services.start_redis()
    try:
        with tempfile.TemporaryDirectory(prefix="fraudstream-bench-") as folder:
            path = Path(folder) / "history.parquet"
            frame.to_parquet(path)
            store = state_store_from_url(url, False, 5.0)
            started = time.perf_counter()
            history = read_history(path).history
            read = time.perf_counter()
            states = build_states(history, "fs", TTL_DAYS)
            built = time.perf_counter()
            summary = write_states(store, states, "fs", TTL_DAYS)
            written = time.perf_counter()
            again = write_states(store, states, "fs", TTL_DAYS)
            rewritten = time.perf_counter()
    finally:
        server.stop()
    total = written - started
    data: dict[str, object] = {
        "transactions": len(frame), "customers": config.customers,
        "terminals": config.terminals, "days": config.days, "keys": summary.keys,
        "read_s": read - started, "build_s": built - read, "write_s": written - built,
        "total_s": total, "events_per_s": len(frame) / total, "target_s": TARGET_S,
        "second_run_write_s": rewritten - written, "second_run_unchanged": again.unchanged,
    }
    headers = ["history", "keys", "read s", "build s", "write s", "total s", "events/s",
               "target"]
    rows = [[f"{len(frame):,} tx, {config.customers:,} customers, {config.terminals:,} "
             f"terminals, {config.days} days", f"{summary.keys:,}", f"{read - started:.1f}",
             f"{built - read:.1f}", f"{written - built:.1f}", f"{total:.1f}",
             f"{len(frame) / total:,.0f}", f"<= {TARGET_S:.0f} s"]]
    print_table("backfill (file -> Redis)", headers, rows)
    write_results(out, "backfill", data, markdown_table(headers, rows))
    return data
