"""Run the ``fraudstream`` command as a separate process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fraudstream.settings import PREFIX, Settings
from fraudstream.stream.status import WorkerStatus, read_status
from tests import signing_keys
from tests.conftest import settings_env
from tests.waiting import wait_for

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


def wait_status(process: subprocess.Popen[bytes], status: Path, log: Path,
                done: Callable[[WorkerStatus], bool], what: str,
                timeout: float = 60) -> WorkerStatus:
    """Until the worker's status file satisfies ``done`` (it fails fast if the worker
    dies); returns that status."""
    def reached() -> WorkerStatus | None:
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        current = read_status(status)
        return current if current is not None and done(current) else None

    return wait_for(reached, lambda: f"{what}:\n{log.read_text()[-3000:]}", timeout, 0.1)


def wait_assigned(process: subprocess.Popen[bytes], status: Path, log: Path,
                  timeout: float = 60) -> WorkerStatus:
    """Until the worker's status file shows partitions."""
    return wait_status(process, status, log, lambda s: bool(s.assigned),
                       "the worker to get partitions", timeout)


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

    def wait_status(self, done: Callable[[WorkerStatus], bool], what: str,
                    timeout: float = 60) -> WorkerStatus:
        return wait_status(self.process, self.status, self.log, done, what, timeout)

    def wait_processed(self, events: int, timeout: float = 60) -> WorkerStatus:
        """Until the worker has processed ``events`` events (its status file says so)."""
        return self.wait_status(lambda s: s.events >= events,
                                f"the worker to process {events} events", timeout)

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


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    """The cleanup after a wait that failed or timed out: never leave the process behind."""
    if process.poll() is None:
        process.kill()
        process.wait()


def start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``fraudstream demo ARGS`` in ``tmp_path``, on embedded services, its TMPDIR
    (logs, status file) under it; its output in demo.log there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    # The demo signs and verifies with a development key pair: made here, not in $HOME.
    env[PREFIX + "DEV_KEYS_DIR"] = str(tmp_path / "dev-keys")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp_path / "tmp")  # the demo's logs and status file land there
    log = tmp_path / "demo.log"
    with open(log, "wb") as handle:
        demo = subprocess.Popen([sys.executable, "-m", "fraudstream", "demo", *args],
                                cwd=tmp_path, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return demo, log
