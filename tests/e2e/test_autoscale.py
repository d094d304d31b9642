"""`fraudstream demo --autoscale`: a compressed day through a pool of workers scaled on lag.
Up at the peak, back down after it, never above the partitions, no transaction lost, no
process left behind."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.cli import kill_if_running, start_demo
from tests.processes import Identity, descendants, still_alive
from tests.waiting import wait_for

PARTITIONS = 4
SUMMARY = re.compile(
    r"autoscale: (?P<events>\d+) scaling events \((?P<ups>\d+) up, (?P<downs>\d+) down\), "
    r"peak (?P<peak>\d+) workers of (?P<partitions>\d+) partitions, peak lag (?P<lag>[\d,]+); "
    r"decided (?P<decided>[\d,]+) of (?P<sent>[\d,]+) sent, (?P<duplicates>[\d,]+) duplicates")
EVENT = re.compile(r"at +[\d.]+ s: (\d+) -> (\d+) workers")


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.slow
def test_a_peak_hour_scales_workers_up_and_back_down_without_loss(tmp_path: Path) -> None:
    # Base 1,000/s, peak 4,000/s at the 20th second. The lag target is half a second of
    # the base rate: the peak is well above it, the night well below a quarter of it.
    demo, log = start_demo(tmp_path, "--autoscale", "--duration", "40", "--rate", "1000",
                            "--target-lag", "500", "--partitions", str(PARTITIONS),
                            "--customers", "500")
    seen: set[Identity] = set()
    started = time.monotonic()
    try:
        def ended() -> bool:
            seen.update(descendants(demo.pid))  # replicas come and go: watch the whole run
            return demo.poll() is not None

        # About 70 s here; more workers on a busier machine mean more 20-s scale-downs.
        wait_for(ended, lambda: f"the demo to end:\n{log.read_text()[-3000:]}", 180, 0.2)
        code = demo.wait(timeout=5)
    finally:
        kill_if_running(demo)
    took_s = time.monotonic() - started
    output = log.read_text()
    assert code == 0, output[-5000:]
    summary = SUMMARY.search(output)
    assert summary, output[-5000:]
    print(f"[autoscale demo] {took_s:.0f}s: " + "\n".join(
        line for line in output.splitlines()
        if line.startswith(("autoscale:", "  at ", "  input partitions"))))
    assert number(summary["ups"]) >= 1, "never scaled up at the peak"
    assert number(summary["downs"]) >= 1, "never scaled back down after the peak"
    assert number(summary["partitions"]) == PARTITIONS
    assert 1 < number(summary["peak"]) <= PARTITIONS
    steps = [(int(a), int(b)) for a, b in EVENT.findall(output)]
    assert len(steps) == number(summary["events"])
    assert all(1 <= b <= PARTITIONS for _, b in steps)
    assert number(summary["sent"]) > 40_000
    assert number(summary["decided"]) == number(summary["sent"]), "transactions lost"
    plot = re.search(r"plot: (\S+\.png)", output)
    assert plot and Path(plot.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the broker, Redis, the simulator and at least two worker replicas
    assert len(seen) >= 5, seen
    assert still_alive(seen) == set(), "the demo left processes behind"
