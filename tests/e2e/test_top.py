"""`fraudstream top --once` against a running worker process's /metrics."""

from __future__ import annotations

from pathlib import Path

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from tests.e2e.cli import run_cli, worker_process
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent


def test_top_shows_the_workers_figures_and_saves_a_picture(settings: Settings,
                                                          tmp_path: Path) -> None:
    port = services.free_port()
    settings = settings.replace(metrics_port=port)
    make_topics(settings, partitions=2)
    with worker_process(settings, tmp_path) as worker:
        frame = simulate(recent(2))
        produce_frame(settings, frame)
        read_topic(settings, settings.topic_decisions, expect=len(frame), settle=0.2)
        picture = tmp_path / "top.png"
        shown = run_cli(settings, "top", "--port", str(port), "--once", "--interval", "0.5",
                        "--png", str(picture))
        assert worker.stop() == 0, worker.tail()
    assert shown.returncode == 0, shown.stderr
    assert "1/1 workers up" in shown.stdout and "in-worker p50 / p99 ms" in shown.stdout
    assert picture.stat().st_size > 10_000


def test_top_without_a_worker_says_so_in_one_line(settings: Settings) -> None:
    result = run_cli(settings, "top", "--port", str(services.free_port()), "--once")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "no worker answers" in result.stderr
