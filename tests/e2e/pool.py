"""Several worker processes in one group (``--processes N`` or one process per replica),
watched through their status files."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.stream.status import WorkerStatus, read_status
from tests.waiting import wait_for

PARTITIONS = 4


def statuses(directory: Path) -> dict[str, WorkerStatus]:
    """The readable status files ``worker-*.json`` in ``directory``, by file name."""
    found = {}
    for path in sorted(directory.glob("worker-*.json")):
        status = read_status(path)
        if status is not None:
            found[path.name] = status
    return found


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def live_statuses(directory: Path) -> dict[str, WorkerStatus]:
    return {n: s for n, s in statuses(directory).items() if alive(s.pid) and not s.stopping}


def processed(directory: Path) -> int:
    """Events processed so far by the workers whose status files are in ``directory``."""
    return sum(s.events for s in statuses(directory).values())


def wait_all_assigned(directory: Path, replicas: int, settings: Settings,
                      process: subprocess.Popen[bytes], log: Path,
                      timeout: float = 90) -> dict[str, WorkerStatus]:
    """Until ``replicas`` live workers hold every input partition, each exactly once, and
    each worker holds some (labels have their own group: they cannot crowd them out)."""
    prefix = settings.topic_transactions + "["
    wanted = {f"{prefix}{p}]" for p in range(PARTITIONS)}

    def shared() -> dict[str, WorkerStatus] | None:
        assert process.poll() is None, log.read_text()[-3000:]
        live = live_statuses(directory)
        held = [p for s in live.values() for p in s.assigned if p.startswith(prefix)]
        each_has_some = all(any(p.startswith(prefix) for p in s.assigned)
                            for s in live.values())
        if (len(live) == replicas and set(held) == wanted and len(held) == len(wanted)
                and each_has_some):
            return live
        return None

    return wait_for(shared, lambda: f"replicas to share the partitions: "
                                    f"{statuses(directory)}\n{log.read_text()[-3000:]}",
                    timeout, 0.1)


def wait_processed(directory: Path, events: int, process: subprocess.Popen[bytes],
                   log: Path, timeout: float = 60) -> int:
    """Until the workers of ``directory`` have processed ``events`` events in all."""
    def enough() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        return processed(directory) >= events

    wait_for(enough, lambda: f"{events} events processed (saw {processed(directory)}):\n"
                             f"{log.read_text()[-3000:]}", timeout, 0.1)
    return processed(directory)


def wait_gone(pid: int, timeout: float = 10) -> None:
    wait_for(lambda: not alive(pid), f"pid {pid} to end", timeout, 0.05)


def stop(process: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> int:
    """SIGTERM, then the exit code; killed (and the test failed) past ``timeout``."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"did not stop within {timeout}s:\n{log.read_text()}") from None
