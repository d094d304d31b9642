"""A topic-level permanent produce error (here: the decisions topic does not exist) ends
a worker once, with one readable line and exit code 7, and its readiness says why; a
``--processes`` supervisor that sees it stops restarting and exits with it, once, instead
of restarting replicas until its restart limit."""

from __future__ import annotations

from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.stream.status import read_status
from tests.e2e.cli import run_cli
from tests.kafka_helpers import make_topics


def test_a_worker_without_its_output_topic_ends_with_exit_7_and_one_line(
        settings: Settings, tmp_path: Path) -> None:
    make_topics(settings, partitions=2)
    status = tmp_path / "worker.json"
    missing = settings.replace(topic_decisions=f"{settings.topic_decisions}-missing")
    result = run_cli(missing, "worker", timeout=90,
                     env={"FRAUDSTREAM_STATUS_FILE": str(status)})
    assert result.returncode == 7, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("fraudstream: error:")]
    assert len(errors) == 1, result.stderr
    assert missing.topic_decisions in errors[0] and "does not exist" in errors[0]
    written = read_status(status)  # what readiness reads (tests/unit/test_health.py)
    assert written is not None and "does not exist" in written.output_error


def test_a_supervisor_stops_at_the_first_permanent_exit(settings: Settings,
                                                        tmp_path: Path) -> None:
    make_topics(settings, partitions=2)
    missing = settings.replace(topic_decisions=f"{settings.topic_decisions}-missing")
    result = run_cli(missing, "worker", "--processes", "2", "--status-dir",
                     str(tmp_path / "status"), timeout=120)
    assert result.returncode == 7, result.stderr
    output = result.stderr + result.stdout
    assert output.count("not restarting it") == 1, output
    assert output.count("started (pid") == 2, "a replica was restarted:\n" + output
    assert "exited 6 times" not in output
