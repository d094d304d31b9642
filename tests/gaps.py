"""What a test does when the broker under test cannot support one of its checks.

Two cases, both visible in the run's summary, never a silent pass:

- ``narrowed``: the test still runs and checks what it can; a ``NarrowedCheck`` warning
  names the check it could not make and why (pytest lists it under "warnings summary").
- ``broker_cannot``: nothing is left to check; the test skips with the reason, except
  under CI (``CI=true``), whose broker must support it: there the test fails.
"""

from __future__ import annotations

import warnings
from typing import NoReturn

import pytest

from tests.tools import skip_here, under_ci


class NarrowedCheck(UserWarning):
    """A test passed with a weaker check than its name promises: the broker's gap."""


def narrowed(check: str, because: str, instead: str) -> None:
    """Say that ``check`` was not made (``because``) and what was checked ``instead``."""
    warnings.warn(NarrowedCheck(f"not checked: {check} ({because}); checked instead: "
                                f"{instead}"), stacklevel=2)


def broker_cannot(what: str) -> NoReturn:
    """Skip (fail under CI): the broker under test cannot do ``what``."""
    if under_ci():
        pytest.fail(f"the broker under CI must support this: {what}", pytrace=False)
    skip_here(f"broker gap: {what}")
