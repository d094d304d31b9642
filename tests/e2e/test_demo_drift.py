"""The demo materializes the history its model was trained on before it streams: with no
drift injected, no alerted feature's PSI is above the alert level (a cold store put
``terminal_nb_tx_30d`` far above it); with drift injected (``--amount-scale``), the PSI of
a feature the amounts move is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.stream.drift import ALERT_PSI
from tests.e2e.cli import kill_if_running, start_demo


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for both runs: the second reuses the model the first trained."""
    return tmp_path_factory.mktemp("demo")


# The features the amounts move: the amount, the customer's means and their ratios.
AMOUNT_FEATURES = frozenset(name for name in FEATURE_NAMES
                            if "amount" in name or "_mean_" in name)
DRIFT_LINE = re.compile(r"drift: largest PSI ([\d.]+) \((\w+)\) of (\d+) alerted features")


def _demo_drift(folder: Path, *args: str) -> tuple[float, str, str]:
    demo, log = start_demo(folder, "--duration", "8", "--rate", "1000",
                            "--customers", "400", *args)
    try:
        code = demo.wait(timeout=240)
    finally:
        kill_if_running(demo)
    output = log.read_text()
    assert code == 0, output
    assert "materialized 60 days of history" in output, output
    found = DRIFT_LINE.search(output)
    assert found, output
    return float(found.group(1)), found.group(2), output


def test_the_demo_after_materialization_has_no_drift_without_injected_drift(
        demo_dir: Path) -> None:
    psi, feature, output = _demo_drift(demo_dir)
    print(f"[demo drift] largest alerted PSI {psi} ({feature})")
    assert psi <= ALERT_PSI, output


@pytest.mark.slow
def test_the_demo_shows_injected_drift(demo_dir: Path) -> None:
    psi, feature, output = _demo_drift(demo_dir, "--amount-scale", "3")
    assert psi > ALERT_PSI and feature in AMOUNT_FEATURES, output
