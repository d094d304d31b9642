"""The alert rules load in Prometheus and behave as their unit tests say (promtool).

promtool comes with Debian's ``prometheus`` package (``scripts/setup.sh`` installs it when
run as root). Without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.tools import tool_missing

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
ALERTS_TEST = RULES_DIR / "alerts_test.yml"
CONFIG = RULES_DIR / "prometheus.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    tool_missing("promtool is not installed", "Debian package prometheus; scripts/setup.sh "
                 "installs it when run as root")


def _run(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _alert_names() -> list[str]:
    return re.findall(r"^\s*-\s+alert:\s*(\w+)\s*$", ALERTS.read_text(), re.MULTILINE)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Static: each alert of alerts.yml appears in alerts_test.yml with ``exp_alerts: []``
    at least once and with expected alerts at least once."""
    cases = re.findall(r"alertname:\s*(\w+)\s*[,\n]\s*exp_alerts:\s*(\[\])?",
                       ALERTS_TEST.read_text())
    names = _alert_names()
    assert names and len(names) == len(set(names))
    firing = {name for name, empty in cases if not empty}
    quiet = {name for name, empty in cases if empty}
    assert {name for name, _ in cases} <= set(names), "a test names an alert that is gone"
    assert not set(names) - firing, f"no firing case for {sorted(set(names) - firing)}"
    assert not set(names) - quiet, f"no quiet case for {sorted(set(names) - quiet)}"


def test_rules_are_valid() -> None:
    result = _run("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alert_names())} rules found" in result.stdout, result.stdout


def test_compose_prometheus_config_is_valid() -> None:
    result = _run("check", "config", CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = _run("test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the budget alert expected on the healthy worker."""
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    original = ALERTS_TEST.read_text()
    firing = "- exp_labels: {severity: warning, instance: w1}"
    assert firing in original
    (tmp_path / ALERTS_TEST.name).write_text(
        original.replace(firing, "- exp_labels: {severity: warning, instance: w2}", 1))
    result = _run("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "FraudstreamBudgetMisses" in result.stdout + result.stderr
