"""Run the ``fraudstream`` command as a separate process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fraudstream.settings import PREFIX, Settings
from stream.status import read_status
from tests import signing_keys
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]


def fraudstream_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "fraudstream", *args]


def run_cli(settings: Settings | None, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = (settings_env(settings) if settings is not None
                   else {**signing_keys.pair().environ(), **(env or {})})
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


def wait_assigned(process: subprocess.Popen[bytes], status: Path, log: Path,
                  timeout: float = 60) -> None:
    """Until the worker's status file shows partitions (it fails fast if the worker dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        current = read_status(status)
        if current is not None and current.assigned:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker never got partitions:\n{log.read_text()}")


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    status: Path
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (the test fails if it takes longer than ``timeout``)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]


@contextlib.contextmanager
def worker_process(settings: Settings, directory: Path, *args: str, name: str = "worker",
                   env: dict[str, str] | None = None) -> Iterator[WorkerProcess]:
    """``fraudstream worker`` as a process with a status file, once it has partitions;
    killed on the way out if the test did not stop it."""
    status, log = directory / f"{name}.json", directory / f"{name}.log"
    process = start_cli(settings, "worker", *args, log=log,
                        env={"FRAUDSTREAM_STATUS_FILE": str(status), **(env or {})})
    try:
        wait_assigned(process, status, log)
        yield WorkerProcess(process, status, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``fraudstream demo ARGS`` in ``tmp_path``, on embedded services; its output in
    demo.log there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    # The demo signs and verifies with a development key pair: made here, not in $HOME.
    env[PREFIX + "DEV_KEYS_DIR"] = str(tmp_path / "dev-keys")
    log = tmp_path / "demo.log"
    with open(log, "wb") as handle:
        demo = subprocess.Popen([sys.executable, "-m", "fraudstream", "demo", *args],
                                cwd=tmp_path, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return demo, log
