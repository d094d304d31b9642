"""The benchmark as a picture: throughput and tail latency per implementation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fraudstream.bench.pipeline import Measurement


def plot(results: list[Measurement], path: Path, title: str) -> None:
    names = [r.name.replace(" (ceiling)", "\n(ceiling)") for r in results]
    fig, (rate_ax, latency_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    rate_ax.barh(names, [r.rate for r in results], color="#3b6ea5")
    rate_ax.set_xscale("log")
    rate_ax.set_xlabel("events per second (log scale)")
    rate_ax.invert_yaxis()
    for y, r in enumerate(results):
        rate_ax.text(r.rate, y, f" {r.rate:,.0f}", va="center", fontsize=8)
    height = 0.38
    positions = range(len(results))
    latency_ax.barh([p - height / 2 for p in positions],
                    [r.in_worker_p99_ms or 0 for r in results], height,
                    label="in-worker p99 (backlog)", color="#e0a030")
    latency_ax.barh([p + height / 2 for p in positions],
                    [r.end_to_end_p99_ms or 0 for r in results], height,
                    label="end-to-end p99 (paced)", color="#b04040")
    latency_ax.set_yticks(list(positions), names)
    latency_ax.set_xscale("log")
    latency_ax.set_xlabel("milliseconds (log scale)")
    latency_ax.invert_yaxis()
    latency_ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
