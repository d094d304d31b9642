"""``fraudstream demo``: services, topics, a model, a simulator and a worker, watched live."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from fraudstream import services
from fraudstream.console import DecisionReader, DecisionStats
from fraudstream.settings import PREFIX, Settings
from fraudstream.simulator.generator import SimulationConfig, simulate
from fraudstream.topics import create_topics
from models.registry import Registry
from models.train import train
from stream.status import read_status

DRAIN_GRACE_S = 15.0


def start_child(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log_file:
        return subprocess.Popen([sys.executable, "-m", "fraudstream", *argv], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=services.die_with_parent)


def stop_child(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def ensure_model(settings: Settings, customers: int, console: Console) -> str:
    registry = Registry(settings.model_dir)
    version = registry.champion_version()
    if version is not None:
        return version
    with console.status("training a first model on simulated history"):
        frame = simulate(SimulationConfig(customers=customers, terminals=2 * customers,
                                          days=60))
        result = train(frame, registry.root)
    console.print(f"trained model {result.version}")
    return result.version


def run_demo(settings: Settings, duration_s: float, rate: float, partitions: int,
             customers: int) -> int:
    console = Console()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logs = Path(tempfile.mkdtemp(prefix="fraudstream-demo-"))
    children: list[subprocess.Popen[bytes]] = []
    worker_code = 0
    try:
        with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
                services.redis_url(settings.redis_url) as redis_url:
            settings = settings.replace(kafka_bootstrap=bootstrap, redis_url=redis_url,
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)
            console.print(f"broker {bootstrap}, redis {redis_url}")
            create_topics(settings, partitions)
            version = ensure_model(settings, customers, console)
            status_path = logs / "worker-status.json"
            env = settings.child_environ()
            env[PREFIX + "STATUS_FILE"] = str(status_path)
            reader = DecisionReader(settings, partitions)
            worker = start_child(["worker"], env, logs / "worker.log")
            children.append(worker)
            with console.status("waiting for the worker to join its consumer group"):
                _wait_for_assignment(worker, status_path, stop)
            simulator = start_child(
                ["simulate", "--rate", str(rate), "--duration", str(duration_s),
                 "--customers", str(customers), "--terminals", str(2 * customers),
                 "--label-delay", "2"], env, logs / "simulator.log")
            children.append(simulator)
            stats = DecisionStats()
            title = f"fraudstream demo: model {version}, {partitions} partitions"
            try:
                with Live(stats.table(title), console=console, refresh_per_second=4) as live:
                    _watch(reader, stats, simulator, worker, stop, live, title)
            except KeyboardInterrupt:
                stop.set()
            finally:
                for child in reversed(children):
                    code = stop_child(child)
                    if child is worker:
                        worker_code = code
                reader.close()
            console.print(f"demo: {stats.summary()}")
            if worker_code != 0:
                console.print(f"worker exited with {worker_code}; log: {logs / 'worker.log'}")
                return 1
            return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _wait_for_assignment(worker: subprocess.Popen[bytes], status_path: Path,
                         stop: threading.Event, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set() and worker.poll() is None:
        status = read_status(status_path)
        if status is not None and status.assigned:
            return
        time.sleep(0.1)


def _watch(reader: DecisionReader, stats: DecisionStats, simulator: subprocess.Popen[bytes],
           worker: subprocess.Popen[bytes], stop: threading.Event, live: Live,
           title: str) -> None:
    """Show figures until the simulator is done and the worker has caught up."""
    drained_since: float | None = None
    while not stop.is_set():
        before = stats.total
        reader.poll_into(stats)
        live.update(stats.table(title))
        if worker.poll() is not None:
            return
        if simulator.poll() is None:
            continue
        if stats.total > before:
            drained_since = None
            continue
        drained_since = drained_since or time.monotonic()
        if time.monotonic() - drained_since > (1.0 if stats.total else DRAIN_GRACE_S):
            return

