"""`fraudstream serve` as a process: it scores over HTTP, serves the platforms' routes on
the port they name, adds up its processes' metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fraudstream.services import free_port
from fraudstream.settings import Settings
from tests.e2e.cli import run_cli, start_cli
from tests.http_helpers import make_keys, transaction
from tests.processes import descendants, still_alive
from tests.waiting import wait_for

NOW_MS = int(time.time() * 1000)


@contextlib.contextmanager
def serving(settings: Settings, log: Path, port: int, *args: str,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = start_cli(settings, "serve", *args, log=log, env=env)
    try:
        def answers() -> bool:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz",
                                 timeout=1).status_code == 200
            return False

        wait_for(answers, lambda: f"serve to answer:\n{log.read_text()}", 60, 0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    below = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()
    wait_for(lambda: not still_alive(below), lambda: f"children to end: {still_alive(below)}",
             10, 0.1)


def test_serve_scores_with_a_key_and_stops_on_sigterm(settings: Settings,
                                                      tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"FRAUDSTREAM_API_KEYS_FILE": str(keys.path)}
    with serving(settings, log, port, "--port", str(port), "--host", "127.0.0.1",
                 env=env) as process:
        url = f"http://127.0.0.1:{port}"
        one = transaction("e1", "c1", "t1", 30.0, NOW_MS - 60_000)
        answer = httpx.post(f"{url}/v1/score", json=one, headers={"X-API-Key": keys.alice})
        assert answer.status_code == 200, answer.text
        assert answer.json()["transaction_id"] == "e1"
        assert httpx.post(f"{url}/v1/score", json=one).status_code == 401
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        stop(process, log)
    assert keys.alice not in log.read_text()


@pytest.mark.slow
def test_serve_listens_where_vertex_says_and_adds_up_its_workers_metrics(
        settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    route = "/v1/endpoints/3/deployedModels/4"
    metrics_port = free_port()
    env = {"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": route,
           "AIP_PREDICT_ROUTE": f"{route}:predict", "FRAUDSTREAM_API_AUTH": "platform",
           "FRAUDSTREAM_API_METRICS_PORT": str(metrics_port)}
    with serving(settings, log, port, "--workers", "2", env=env) as process:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + route).status_code == 200
        one = transaction("v1", "c1", "t1", 30.0, NOW_MS - 60_000)
        for _ in range(20):  # fresh connections: both processes take some
            answer = httpx.post(f"{url}{route}:predict", json={"instances": [one]})
            assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
        assert httpx.get(f"{url}/metrics").status_code == 404, "not on the API port"
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        stop(process, log)
    total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("fraudstream_http_decisions_total{"))
    assert total == 20, "every process's decisions are in one scrape"
    assert f"serving on 0.0.0.0:{port} with 2 processes" in log.read_text()


def test_serve_refuses_a_bad_configuration_in_one_line(settings: Settings) -> None:
    result = run_cli(settings, "serve", "--port", str(free_port()), timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("fraudstream: error: no API keys: set "
                               "FRAUDSTREAM_API_KEYS_FILE")


def test_api_key_commands_make_and_revoke_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    made = run_cli(None, "api-key", "create", "alice", "--file", str(path))
    assert made.returncode == 0, made.stderr
    key = made.stdout.split("API key alice: ", 1)[1].split()[0]
    assert key.startswith("fsk_") and key not in path.read_text()
    twice = run_cli(None, "api-key", "create", "alice", "--file", str(path))
    assert twice.returncode == 2 and "already in" in twice.stderr
    revoked = run_cli(None, "api-key", "revoke", "alice", "--file", str(path))
    assert revoked.returncode == 0 and path.read_text().strip().endswith(":revoked")
    bad = run_cli(None, "api-key", "create", "no spaces")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_two_serve_processes_share_one_rate_limit(settings: Settings, tmp_path: Path) -> None:
    """Two replicas of `fraudstream serve` on one Redis accept, together, no more than the
    burst: the rate is so low that nothing refills while the test runs."""
    keys = make_keys(tmp_path)
    env = {"FRAUDSTREAM_API_KEYS_FILE": str(keys.path), "FRAUDSTREAM_API_RATE": "0.001",
           "FRAUDSTREAM_API_BURST": "6", "FRAUDSTREAM_API_MAX_BATCH": "1"}
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports):
            stack.enter_context(serving(settings, tmp_path / f"serve-{n}.log", port,
                                        "--port", str(port), "--host", "127.0.0.1",
                                        env=env))
        one = transaction("s1", "c1", "t1", 30.0, NOW_MS - 60_000)
        answers = [httpx.post(f"http://127.0.0.1:{port}/v1/score", json=one,
                              headers={"X-API-Key": keys.alice}).status_code
                   for port in ports * 8]
    assert 6 <= answers.count(200) <= 6 + 1, answers  # per process it would be 12
    assert set(answers) == {200, 429}, answers
