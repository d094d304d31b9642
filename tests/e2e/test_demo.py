"""`fraudstream demo` on embedded services: exits 0 and leaves no process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from fraudstream.stream.status import read_status
from tests.e2e.cli import kill_if_running, start_demo
from tests.processes import Identity, descendants, still_alive
from tests.waiting import wait_for

# demo -> broker, redis, worker, simulator
EXPECTED_CHILDREN = 4


def _track(demo: subprocess.Popen[bytes], seen: set[Identity], timeout: float) -> None:
    """Record the demo's process tree until it exits or has all its children."""
    def complete() -> bool:
        seen.update(descendants(demo.pid))
        return demo.poll() is not None or len(seen) >= EXPECTED_CHILDREN

    wait_for(complete, lambda: f"the demo's children (saw {seen})", timeout, 0.1)


def _deciding(tmp_path: Path) -> bool:
    """The demo's worker has decided something (its status file, under TMPDIR, says so)."""
    return any((s := read_status(path)) is not None and s.batches > 0
               for path in (tmp_path / "tmp").glob("fraudstream-demo-*/worker-status.json"))


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    demo, log = start_demo(tmp_path, "--duration", "5", "--rate", "500", "--customers", "500")
    seen: set[Identity] = set()
    try:
        _track(demo, seen, 60)
        code = demo.wait(timeout=120)
    finally:
        kill_if_running(demo)
    output = log.read_text()
    assert code == 0, output
    assert len(seen) >= EXPECTED_CHILDREN, f"expected broker, redis, worker, simulator: {seen}"
    summary = re.search(r"demo: (\d+) decisions at ([\d,]+) events/s", output)
    assert summary, output
    assert int(summary.group(1)) == 2500, output
    assert still_alive(seen) == set(), "demo left processes behind"
    # Without configured keys the demo makes its own, says so, and keeps them private.
    assert "development keys" in output
    assert (tmp_path / "dev-keys" / "model-signing.pem").stat().st_mode & 0o077 == 0


def test_ctrl_c_stops_the_demo_and_cleans_up(tmp_path: Path) -> None:
    demo, log = start_demo(tmp_path, "--duration", "600", "--rate", "200",
                            "--customers", "300")
    seen: set[Identity] = set()
    try:
        _track(demo, seen, 60)
        assert len(seen) >= EXPECTED_CHILDREN, log.read_text()
        wait_for(lambda: _deciding(tmp_path), lambda: f"decisions:\n{log.read_text()}")
        interrupted = time.monotonic()
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
        stop_seconds = time.monotonic() - interrupted
    finally:
        kill_if_running(demo)
    assert code in (0, 130), log.read_text()
    assert stop_seconds < 30, f"Ctrl-C took {stop_seconds:.1f}s"
    assert still_alive(seen) == set(), "Ctrl-C left processes behind"

