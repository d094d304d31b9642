"""``fraudstream top``: the dashboard's figures in a terminal, from the workers' /metrics.

Two scrapes a second apart give rates and latency percentiles (from histogram bucket
deltas, as Prometheus's ``histogram_quantile`` would); gauges are shown as they are."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from fraudstream.stream.drift import alerted

Labels = tuple[tuple[str, str], ...]
STAGES = ("decode", "features", "score", "produce", "update")


@dataclass
class Snapshot:
    """Every sample of every scraped worker, summed over workers per (name, labels)."""

    taken_at: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    workers_up: int = 0
    workers: int = 0

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def parse(text: str, into: Snapshot) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            into.samples[key] = into.samples.get(key, 0.0) + sample.value


def scrape(urls: Sequence[str], timeout: float = 2.0) -> Snapshot:
    snapshot = Snapshot(time.monotonic(), workers=len(urls))
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                parse(response.read().decode(), snapshot)
            snapshot.workers_up += 1
        except OSError:
            continue
    return snapshot


def quantile(q: float, before: dict[Labels, float], after: dict[Labels, float]) -> float | None:
    """The q-quantile of the observations between two scrapes of one histogram's buckets,
    interpolated linearly inside the bucket like Prometheus does; None without any."""
    buckets = []
    for labels, count in after.items():
        upper = dict(labels).get("le")
        if upper is not None:
            buckets.append((float(upper), count - before.get(labels, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def histogram_percentiles(before: Snapshot, after: Snapshot, name: str,
                          ) -> tuple[float | None, float | None]:
    """(p50, p99) in milliseconds of the observations of histogram ``name`` (in seconds)
    between two scrapes."""
    b, a = _histogram(before, name), _histogram(after, name)
    # return-value: the tuple has one value per quantile asked; mypy cannot count it
    return tuple(None if v is None else v * 1000  # type: ignore[return-value]
                 for v in (quantile(0.5, b, a), quantile(0.99, b, a)))


def _histogram(snapshot: Snapshot, name: str, **labels: str) -> dict[Labels, float]:
    wanted = set(labels.items())
    return {k: v for k, v in snapshot.series(f"{name}_bucket").items() if wanted <= set(k)}


@dataclass(frozen=True)
class Figures:
    seconds: float
    workers: str
    events_per_s: float
    decisions_per_s: dict[str, float]
    dead_letters_per_s: float
    degraded_per_s: float
    budget_misses_per_s: float
    in_worker_ms: tuple[float | None, float | None]
    end_to_end_ms: tuple[float | None, float | None]
    stage_us_per_batch: dict[str, float | None]
    lag: dict[str, float]
    psi: dict[str, float]
    model: str
    feature_store_up: float


def figures(before: Snapshot, after: Snapshot) -> Figures:
    seconds = max(1e-9, after.taken_at - before.taken_at)

    def rate(name: str, **labels: str) -> float:
        return max(0.0, after.value(name, **labels) - before.value(name, **labels)) / seconds

    def rate_of_all(name: str) -> float:
        """Summed over every label set of ``name``."""
        earlier = before.series(name)
        return sum(max(0.0, v - earlier.get(labels, 0.0))
                   for labels, v in after.series(name).items()) / seconds

    stages = {}
    for stage in STAGES:
        count = rate("fraudstream_stage_latency_seconds_count", stage=stage)
        total = rate("fraudstream_stage_latency_seconds_sum", stage=stage)
        stages[stage] = total / count * 1e6 if count else None
    outcomes = {dict(k).get("outcome", "?"): 0.0
                for k in after.series("fraudstream_decisions_total")}
    lag = {f"{dict(k)['topic']}[{dict(k)['partition']}]": v
           for k, v in after.series("fraudstream_consumer_lag").items()}
    psi = {dict(k)["feature"]: v for k, v in after.series("fraudstream_feature_psi").items()}
    models = sorted({dict(k).get("version", "?")
                     for k in after.series("fraudstream_model_info")})
    return Figures(
        seconds=seconds, workers=f"{after.workers_up}/{after.workers}",
        events_per_s=rate("fraudstream_events_total"),
        decisions_per_s={o: rate("fraudstream_decisions_total", outcome=o) for o in outcomes},
        dead_letters_per_s=rate_of_all("fraudstream_dead_letters_total"),
        degraded_per_s=rate_of_all("fraudstream_degraded_decisions_total"),
        budget_misses_per_s=rate("fraudstream_budget_misses_total"),
        in_worker_ms=histogram_percentiles(before, after,
                                           "fraudstream_event_latency_seconds"),
        end_to_end_ms=histogram_percentiles(before, after,
                                            "fraudstream_end_to_end_latency_seconds"),
        stage_us_per_batch=stages, lag=lag, psi=psi, model=", ".join(models) or "-",
        feature_store_up=after.value("fraudstream_feature_store_up"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(f: Figures) -> Table:
    table = Table(title=f"fraudstream top: {f.workers} workers up, model {f.model}",
                  show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("events/s", f"{f.events_per_s:,.0f}"),
        *((f"decisions/s {o}", f"{v:,.1f}") for o, v in sorted(f.decisions_per_s.items())),
        ("dead letters/s", f"{f.dead_letters_per_s:,.1f}"),
        ("degraded/s", f"{f.degraded_per_s:,.1f}"),
        ("budget misses/s", f"{f.budget_misses_per_s:,.1f}"),
        ("in-worker p50 / p99 ms", f"{_ms(f.in_worker_ms[0])} / {_ms(f.in_worker_ms[1])}"),
        ("end-to-end p50 / p99 ms",
         f"{_ms(f.end_to_end_ms[0])} / {_ms(f.end_to_end_ms[1])}"),
        *((f"stage {s} us/batch", "-" if v is None else f"{v:,.0f}")
          for s, v in f.stage_us_per_batch.items()),
        ("feature store", "up" if f.feature_store_up >= 1 else "DOWN (degraded)"),
        ("lag total", f"{sum(f.lag.values()):,.0f}"),
        *((f"lag {p}", f"{v:,.0f}") for p, v in sorted(f.lag.items())),
        *((f"drift PSI {n}", f"{v:.3f}") for n, v in _top(alerted(f.psi).items(), 5)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _top(items: Iterable[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    return sorted(items, key=lambda kv: -kv[1])[:n]


def workers_from(urls: Sequence[str], ports: Sequence[int]) -> list[str]:
    found = list(urls) + [f"http://127.0.0.1:{p}/metrics" for p in ports]
    return [u if u.endswith("/metrics") else u.rstrip("/") + "/metrics" for u in found]



def save_png(table: Table, path: str) -> None:
    """The view as it looks in a terminal, as a picture (for READMEs and incident notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console

    console = Console(record=True, width=72, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    text = console.export_text()
    lines = text.splitlines()
    figure = plt.figure(figsize=(7.6, 0.16 * len(lines) + 0.3), facecolor="#1e1e1e")
    figure.text(0.02, 0.98, text, family="monospace", fontsize=9, color="#e0e0e0",
                va="top", ha="left")
    figure.savefig(path, dpi=120, facecolor=figure.get_facecolor())
    plt.close(figure)
