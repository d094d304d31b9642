"""Worker processes on one host, in one consumer group: start, scale, restart, stop.

Each replica is a ``fraudstream worker`` process of its own (one core each: the worker is
single-threaded by design), with its own status file and metrics port. Replicas on other
hosts join the same group the same way; cooperative-sticky assignment moves only the
partitions that must move when one joins or leaves."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from fraudstream.child_process import die_with_parent
from fraudstream.settings import Settings
from fraudstream.stream.status import WorkerStatus, read_status
from fraudstream.stream.transactions import replica_transactional_id

log = logging.getLogger(__name__)

RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 5  # within the window: a replica that keeps dying is a fault, not bad luck
# Exits that the same settings would repeat: restarting would only loop.
PERMANENT_EXITS = {
    2: "invalid configuration",
    6: "credentials or certificate refused",
    7: "an output topic refuses every record",
}


class SupervisorError(RuntimeError):
    """Replicas keep failing: restarting them again would only hide it."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Replica:
    slot: int
    process: subprocess.Popen[bytes]
    status_path: Path
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> WorkerStatus | None:
        return read_status(self.status_path)


class WorkerPool:
    """Replicas of the worker; ``scale_to`` adds or drains them, ``supervise`` restarts
    those that die unasked."""

    def __init__(self, settings: Settings, status_dir: Path,
                 argv: tuple[str, ...] = ("worker",)) -> None:
        self.settings = settings
        self.status_dir = status_dir
        self.argv = argv
        self.replicas: list[Replica] = []
        self._draining: list[Replica] = []
        self._restarts: deque[float] = deque()
        status_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.replicas)

    def scale_to(self, count: int) -> None:
        while len(self.replicas) < count:
            self.replicas.append(self._start(self._free_slot()))
        while len(self.replicas) > count:
            self._drain(self.replicas.pop())  # the newest: the oldest hold warm state

    def statuses(self) -> list[WorkerStatus | None]:
        return [replica.status() for replica in self.replicas]

    def supervise(self) -> list[tuple[Replica, int]]:
        """Reap exited replicas; restart those that exited unasked. Returns the exits."""
        exits: list[tuple[Replica, int]] = []
        for replica in list(self._draining):
            code = replica.process.poll()
            if code is not None:
                self._draining.remove(replica)
                exits.append((replica, code))
        for i, replica in enumerate(self.replicas):
            code = replica.process.poll()
            if code is None:
                continue
            exits.append((replica, code))
            if code in PERMANENT_EXITS:
                raise SupervisorError(
                    f"worker replica {replica.slot} exited with {code} "
                    f"({PERMANENT_EXITS[code]}): not restarting it, the same settings "
                    f"would fail again", exit_code=code)
            self._count_restart(replica, code)
            log.warning("worker replica %d (pid %d) exited with %d; restarting",
                        replica.slot, replica.pid, code)
            self.replicas[i] = self._start(replica.slot)
        return exits

    def stop(self, timeout: float) -> int:
        """SIGTERM every replica, wait for them to drain and commit; the worst exit code
        (a replica still running after ``timeout`` is killed and counts as failed)."""
        for replica in self.replicas:
            self._drain(replica)
        self.replicas = []
        worst = 0
        deadline = time.monotonic() + timeout
        for replica in self._draining:
            try:
                code = replica.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker replica %d (pid %d) did not stop in %.0fs; killing it",
                          replica.slot, replica.pid, timeout)
                replica.process.kill()
                replica.process.wait()
                code = -signal.SIGKILL
            if code != 0 and worst == 0:
                worst = code if code > 0 else 1
        self._draining = []
        return worst

    # -- internals ---------------------------------------------------------------------

    def _free_slot(self) -> int:
        used = {replica.slot for replica in self.replicas}
        return next(slot for slot in range(len(used) + 1) if slot not in used)

    def _start(self, slot: int) -> Replica:
        status_path = self.status_dir / f"worker-{slot}.json"
        with contextlib.suppress(FileNotFoundError):
            status_path.unlink()  # a stale file must not pass for the new process's
        changes: dict[str, object] = {"status_file": str(status_path)}
        if self.settings.metrics_port:
            changes["metrics_port"] = self.settings.metrics_port + slot
        if self.settings.exactly_once:  # a restart of the slot ends its predecessor's transaction
            changes["transactional_id"] = replica_transactional_id(self.settings, slot)
        env = self.settings.replace(**changes).child_environ()
        process = subprocess.Popen([sys.executable, "-m", "fraudstream", *self.argv],
                                   env=env, stdin=subprocess.DEVNULL,
                                   preexec_fn=die_with_parent)
        log.info("worker replica %d started (pid %d)", slot, process.pid)
        return Replica(slot, process, status_path)

    def _drain(self, replica: Replica) -> None:
        replica.stopping = True
        if replica.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                replica.process.send_signal(signal.SIGTERM)
        self._draining.append(replica)

    def _count_restart(self, replica: Replica, code: int) -> None:
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            raise SupervisorError(
                f"worker replicas exited {len(self._restarts)} times in "
                f"{RESTART_WINDOW_S:.0f}s (last: replica {replica.slot}, exit code {code})")


def run_pool(settings: Settings, processes: int, status_dir: Path | None = None) -> int:
    """``fraudstream worker --processes N``: run N replicas until SIGTERM or SIGINT."""
    import tempfile

    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    own_dir = status_dir is None
    directory = status_dir or Path(tempfile.mkdtemp(prefix="fraudstream-workers-"))
    pool = WorkerPool(settings, directory)
    code = 0
    try:
        pool.scale_to(processes)
        log.info("%d worker replicas running; status files in %s", processes, directory)
        while not stop:
            pool.supervise()
            time.sleep(0.2)
    except SupervisorError as exc:
        log.error("%s", exc)
        code = exc.exit_code
    finally:
        worst = pool.stop(settings.shutdown_timeout_s + 10.0)
        code = code or worst
        if own_dir:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
    return code
