"""A real Prometheus scrapes a real `fraudstream worker` under load; the dashboard's main
queries and every alert rule then evaluate on what it scraped.

Prometheus (Debian's ``prometheus`` package, installed by ``scripts/setup.sh`` as root)
listens on a free loopback port and scrapes the worker's /metrics every second. Without
the binary the test skips, except under CI, where it fails.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.e2e.cli import ROOT, start_cli, wait_assigned
from tests.e2e.faults import PacedLoad
from tests.kafka_helpers import make_topics
from tests.population import recent
from tests.tools import tool_missing
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a fault scenario under load: a minute or more

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "fraudstream.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB = "fraudstream-worker"
# Grafana's $__rate_interval, for a 1 s scrape interval.
RATE_WINDOW = "10s"
LOAD_S = 15.0
STAGES = {"decode", "features", "score", "produce", "update"}


PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None:
    # At module level, so that no broker, Redis or model is started for nothing.
    tool_missing("prometheus is not installed", "Debian package prometheus; "
                 "scripts/setup.sh installs it when run as root", module_level=True)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as answer:
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = _get(url)
    except urllib.error.HTTPError as exc:  # 400 and 422 carry Prometheus's reason
        raise AssertionError(f"{expr}: {exc.read().decode(errors='replace')}") from exc
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _panel_queries(title: str) -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel.get("title") == title:
            return [t["expr"].replace("$__rate_interval", RATE_WINDOW)
                    for t in panel["targets"]]
    raise AssertionError(f"the dashboard has no panel {title!r}")


def _values(result: list[dict]) -> list[float]:
    return [float(series["value"][1]) for series in result]


Check = tuple[str, Callable[[list[dict]], bool]]


def _checks() -> dict[str, Check]:
    """Name -> (PromQL, predicate on the result) for what the dashboard shows first."""
    throughput = _panel_queries("Throughput (events/s)")
    outcomes = _panel_queries("Decisions by outcome (/s)")
    latency = _panel_queries("In-worker and end-to-end latency p50 / p99")
    stages = _panel_queries("Stage latency p50 / p99")

    def positive(result: list[dict]) -> bool:
        return bool(result) and all(v > 0 and math.isfinite(v) for v in _values(result))

    def every_stage(result: list[dict]) -> bool:
        return ({s["metric"].get("stage") for s in result} == STAGES
                and all(math.isfinite(v) for v in _values(result)))

    def approvals(result: list[dict]) -> bool:
        rates = {s["metric"].get("outcome"): float(s["value"][1]) for s in result}
        return rates.get("approve", 0.0) > 0

    checks: dict[str, Check] = {
        "up": (f'up{{job="{JOB}"}}', lambda r: _values(r) == [1.0]),
        "throughput consumed": (throughput[0], positive),
        "throughput decided": (throughput[1], positive),
        "decisions by outcome": (outcomes[0], approvals),
        "in-worker p99": (latency[0], positive),
        "in-worker p50": (latency[1], positive),
        "end-to-end p99": (latency[2], positive),
        "stage p50": (stages[0], every_stage),
        "stage p99": (stages[1], every_stage),
    }
    return checks


def test_prometheus_scrapes_a_worker_under_load(settings: Settings, tmp_path: Path) -> None:
    assert PROMETHEUS is not None  # else the module was skipped (failed under CI)
    started = time.monotonic()
    make_topics(settings, partitions=2)
    frame = simulate(recent(3))
    metrics_port, prometheus_port = services.free_port(), services.free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    status, log = tmp_path / "status.json", tmp_path / "worker.log"
    worker = start_cli(settings, "worker", log=log, env={
        "FRAUDSTREAM_STATUS_FILE": str(status),
        "FRAUDSTREAM_METRICS_PORT": str(metrics_port)})
    prometheus = None
    load = None
    try:
        prometheus = services.start_process("prometheus", [
            PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ], ready=lambda: _ready(prometheus_port), timeout=30)
        wait_assigned(worker, status, log)
        load = PacedLoad(settings, frame, rate=len(frame) / LOAD_S)
        load.start()

        checks = _checks()
        passed: set[str] = set()
        last: dict[str, list[dict]] = {}

        def all_passed() -> bool:
            assert worker.poll() is None, log.read_text()[-3000:]
            for name, (expr, predicate) in checks.items():
                if name not in passed:
                    last[name] = _query(prometheus_port, expr)
                    if predicate(last[name]):
                        passed.add(name)
            return len(passed) == len(checks)

        wait_for(all_passed, lambda: "queries with the expected data: " + str(
            {name: (checks[name][0], last.get(name)) for name in checks if name not in passed}),
            LOAD_S + 10, 0.5)

        # Every other panel's query is valid PromQL too (some have no data yet: lag, drift).
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                _query(prometheus_port, target["expr"].replace("$__rate_interval", RATE_WINDOW))

        # Every alert rule evaluates without error on real worker series.
        health: dict[str, str] = {}

        def evaluated() -> list[dict]:
            groups = _get(f"http://127.0.0.1:{prometheus_port}/api/v1/rules")["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            health.update({rule["name"]: rule["health"] for rule in rules})
            return rules if rules and all(r["health"] == "ok" for r in rules) else []

        rules = wait_for(evaluated, lambda: f"alert rules all evaluated: {health}", 10, 0.5)
        assert len(rules) == ALERTS.read_text().count("- alert:")

        # Once the load is in, Prometheus has counted every event and every decision.
        sent = load.finish()
        totals = {"events": "sum(fraudstream_events_total)",
                  "decisions": "sum(fraudstream_decisions_total)"}
        counted: dict[str, list[float]] = {}

        def all_counted() -> bool:
            counted.update({name: _values(_query(prometheus_port, expr))
                            for name, expr in totals.items()})
            return all(values == [float(sent)] for values in counted.values())

        wait_for(all_counted, lambda: f"{sent} counted by Prometheus: {counted}", 20, 0.5)
        run_p99 = _values(_query(prometheus_port, (
            "histogram_quantile(0.99, sum by (le) "
            "(increase(fraudstream_event_latency_seconds_bucket[1m])))")))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if prometheus is not None:
            prometheus.stop()
        if load is not None and load.is_alive():
            load.join(30)
    elapsed = time.monotonic() - started
    print(f"[prometheus scrape] sent={sent} counted_by_prometheus={sent} "
          f"in_worker_p99_ms={run_p99[0] * 1000:.2f} elapsed_s={elapsed:.1f}")
