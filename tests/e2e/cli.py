"""Run the ``fraudstream`` command as a separate process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fraudstream.settings import Settings
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]


def fraudstream_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "fraudstream", *args]


def run_cli(settings: Settings | None, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = settings_env(settings) if settings is not None else dict(env or {})
    if env:
        environment.update(env)
    return subprocess.run(fraudstream_argv(*args), env=environment, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_cli(settings: Settings, *args: str, log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = settings_env(settings)
    environment.update(env or {})
    with open(log, "wb") as handle:
        return subprocess.Popen(fraudstream_argv(*args), env=environment, cwd=ROOT,
                                stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
