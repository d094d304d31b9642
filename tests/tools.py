"""What a test does when a tool it needs is not installed: skip, saying what to install,
except under CI (``CI=true``), where every tool must be there and the test fails."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def skip_here(reason: str, module_level: bool = False) -> NoReturn:
    """``pytest.skip`` that ``-rs`` reports at the skipped test's location, not at the
    helper that raised it (pytest's own ``_use_item_location``, as skip marks do)."""
    raise pytest.skip.Exception(reason, allow_module_level=module_level,
                                _use_item_location=True)


def tool_missing(what: str, install: str, module_level: bool = False) -> NoReturn:
    """Skip (or fail under CI) because ``what`` is missing; ``install`` says how to get it."""
    if under_ci():
        pytest.fail(f"{what} under CI: {install}", pytrace=False)
    skip_here(f"{what} ({install})", module_level)
