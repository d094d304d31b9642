"""What the suite does when it cannot check something (tests/tools.py, tests/gaps.py), run
as pytest itself would: skips with their reasons normally, failures under CI=true, and a
narrowed check that passes with a warning in the summary either way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INNER = '''
from tests.gaps import broker_cannot, narrowed
from tests.tools import tool_missing


def test_needs_a_tool():
    tool_missing("sometool is not installed", "apt-get install sometool")


def test_needs_a_broker_feature():
    broker_cannot("the broker cannot do it")


def test_narrows_its_check():
    narrowed("the strict claim", "the broker's gap", "a weaker claim")
'''
MODULE = '''
from tests.tools import tool_missing

tool_missing("othertool is not installed", "apt-get install othertool", module_level=True)


def test_never_collected():
    pass
'''


def _run(tmp_path: Path, ci: bool, module: str) -> str:
    """pytest on ``module`` (INNER or MODULE) in a directory of its own; its output."""
    (tmp_path / "test_inner.py").write_text(module)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    argv = [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
            "test_inner.py"]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    return result.stdout + result.stderr


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
def test_what_cannot_be_checked_is_said_and_fails_under_ci(tmp_path: Path, ci: bool) -> None:
    output = _run(tmp_path, ci, INNER)
    summary = output.strip().splitlines()[-1]
    if ci:
        assert re.search(r"2 failed, 1 passed, 1 warning", summary), output
        assert "sometool is not installed under CI: apt-get install sometool" in output
        assert "the broker under CI must support this: the broker cannot do it" in output
    else:
        assert re.search(r"1 passed, 2 skipped, 1 warning", summary), output
        # Reported where the test is, not where the helper raised the skip.
        assert "SKIPPED [1] test_inner.py:6: sometool is not installed (apt-get install " \
               "sometool)" in output, output
        assert "SKIPPED [1] test_inner.py:10: broker gap: the broker cannot do it" in output
    assert ("NarrowedCheck: not checked: the strict claim (the broker's gap); checked "
            "instead: a weaker claim") in output


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
def test_a_module_without_its_tool_skips_whole_or_fails_under_ci(tmp_path: Path,
                                                                 ci: bool) -> None:
    output = _run(tmp_path, ci, MODULE)
    summary = output.strip().splitlines()[-1]
    if ci:
        assert re.search(r"1 error", summary), output
        assert "othertool is not installed under CI: apt-get install othertool" in output
    else:
        assert re.search(r"1 skipped", summary), output
        assert "othertool is not installed (apt-get install othertool)" in output
