"""``fraudstream demo``: services, topics, a model, a simulator and a worker, watched live.

``fraudstream demo --autoscale``: a peak hour instead. The simulator follows a daily curve
and a pool of workers grows and shrinks on consumer lag; the view shows workers, lag and
rates, and the run ends with a summary and a plot."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from fraudstream import services
from fraudstream.child_process import die_with_parent
from fraudstream.console import DecisionReader, DecisionStats
from fraudstream.drift_view import DriftView
from fraudstream.logs import TextFormatter
from fraudstream.models.registry import Registry
from fraudstream.models.train import train
from fraudstream.settings import PREFIX, Settings
from fraudstream.simulator.streamer import daily_profile, planned_events
from fraudstream.stream.autoscale import Autoscaler, Point, ScalingPolicy
from fraudstream.stream.lag import LagObserver
from fraudstream.stream.status import read_status
from fraudstream.stream.supervisor import Replica, SupervisorError, WorkerPool
from fraudstream.topics import create_topics
from fraudstream.warm_start import WarmStart, materialize_history

if TYPE_CHECKING:
    import pandas as pd

DRAIN_GRACE_S = 15.0
PAUSE_WINDOW_S = 15.0  # how long after a scaling event its decision pause is looked for


def start_child(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log_file:
        return subprocess.Popen([sys.executable, "-m", "fraudstream", *argv], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def stop_child(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def ensure_model(settings: Settings, history: pd.DataFrame, console: Console) -> str:
    registry = Registry(settings.model_dir)
    version = registry.champion_version()
    if version is not None:
        return version
    with console.status("training a first model on the simulated history"):
        result = train(history, registry.root)
    console.print(f"trained model {result.version}")
    return result.version


def warm_up(settings: Settings, customers: int, events: int, amount_scale: float,
            console: Console) -> tuple[WarmStart, str]:
    """The history before the stream: a model trained on it (unless there is a champion)
    and its state materialized, so the stream starts on warm features."""
    warm = WarmStart.before_now(customers, events, amount_scale)
    history = warm.history()
    version = ensure_model(settings, history, console)
    with console.status(f"materializing {len(history):,} transactions of history"):
        written = materialize_history(settings, history)
    console.print(f"materialized {warm.history_days} days of history "
                  f"({len(history):,} transactions, {written.keys:,} keys)")
    return warm, version


def run_demo(settings: Settings, duration_s: float, rate: float, partitions: int,
             customers: int, amount_scale: float = 1.0) -> int:
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
            warm, version = warm_up(settings, customers, int(rate * duration_s),
                                    amount_scale, console)
            status_path = logs / "worker-status.json"
            env = settings.child_environ()
            env[PREFIX + "STATUS_FILE"] = str(status_path)
            metrics_port = services.free_port()
            env[PREFIX + "METRICS_PORT"] = str(metrics_port)
            drift = DriftView([f"http://127.0.0.1:{metrics_port}/metrics"])
            reader = DecisionReader(settings, partitions)
            worker = start_child(["worker"], env, logs / "worker.log")
            children.append(worker)
            with console.status("waiting for the worker to join its consumer group"):
                _wait_for_assignment(worker, status_path, stop)
            simulator = start_child(
                ["simulate", "--rate", str(rate), "--duration", str(duration_s),
                 *warm.simulate_args(), "--label-delay", "2"], env, logs / "simulator.log")
            children.append(simulator)
            stats = DecisionStats()
            title = f"fraudstream demo: model {version}, {partitions} partitions"
            try:
                with Live(stats.table(title), console=console, refresh_per_second=4) as live:
                    _watch(reader, stats, simulator, worker, stop, live, title, drift)
            except KeyboardInterrupt:
                stop.set()
            finally:
                with contextlib.suppress(Exception):  # the last figures, if it still answers
                    drift.refresh(force=True)
                for child in reversed(children):
                    code = stop_child(child)
                    if child is worker:
                        worker_code = code
                reader.close()
            console.print(f"demo: {stats.summary()}")
            console.print(drift.summary(), highlight=False, soft_wrap=True)
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
           title: str, drift: DriftView) -> None:
    """Show figures until the simulator is done and the worker has caught up."""
    drained_since: float | None = None
    while not stop.is_set():
        before = stats.total
        reader.poll_into(stats)
        drift.refresh()
        live.update(stats.table(title, drift.rows()))
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



# -- fraudstream demo --autoscale --------------------------------------------------------


def run_autoscale_demo(settings: Settings, duration_s: float, rate: float, partitions: int,
                       customers: int, min_workers: int, target_lag: int,
                       amount_scale: float = 1.0) -> int:
    """A compressed day through a pool of workers scaled on lag, between ``min_workers``
    and ``partitions``. After the stream ends it keeps watching until the backlog is
    decided and the pool is back to its minimum (bounded by the scale-down cooldowns)."""
    console = Console()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logs = Path(tempfile.mkdtemp(prefix="fraudstream-demo-"))
    simulator: subprocess.Popen[bytes] | None = None
    try:
        with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
                services.redis_url(settings.redis_url) as redis_url, \
                _loggers_to(logs / "autoscale.log", "fraudstream.stream.supervisor",
                            "fraudstream.stream.autoscale", "fraudstream.stream.lag",
                            "fraudstream.kafka"):
            settings = settings.replace(kafka_bootstrap=bootstrap, redis_url=redis_url,
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)
            console.print(f"broker {bootstrap}, redis {redis_url}; logs in {logs}")
            create_topics(settings, partitions)
            events = planned_events(rate, duration_s, daily_profile(duration_s))
            warm, version = warm_up(settings, customers, events, amount_scale, console)
            policy = ScalingPolicy(max_replicas=partitions, min_replicas=min_workers,
                                   target_lag=target_lag)
            reader = DecisionReader(settings, partitions)
            observer = LagObserver(settings)
            pool = _QuietPool(settings, logs / "workers", logs / "workers.log")
            scaler = Autoscaler(pool, observer, policy)
            stats = DecisionStats()
            record = _Record()
            code, sent, first = 0, 0, None
            try:
                scaler.start()
                with console.status(f"waiting for {min_workers} worker(s) to join the group"):
                    _wait_for_pool(pool, stop)
                    observer.wait_ready()
                first = observer.sample()
                simulator = start_child(
                    ["simulate", "--rate", str(rate), "--duration", str(duration_s),
                     "--profile", "daily", *warm.simulate_args(), "--label-delay", "2"],
                    settings.child_environ(), logs / "simulator.log")
                title = (f"fraudstream peak hour: model {version}, {partitions} partitions, "
                         f"base rate {rate:,.0f}/s")
                with Live(stats.table(title), console=console, auto_refresh=False) as live:
                    _watch_autoscale(reader, stats, scaler, simulator, stop, live, title,
                                     record)
            except KeyboardInterrupt:
                stop.set()
            except SupervisorError as exc:
                console.print(f"workers keep failing: {exc}")
                code = 1
            finally:
                if simulator is not None:
                    failed = simulator.poll() not in (None, 0)
                    stop_child(simulator)
                    if failed:
                        console.print(f"the simulator exited with {simulator.returncode}; "
                                      f"log: {logs / 'simulator.log'}")
                        code = 1
                worst = pool.stop(settings.shutdown_timeout_s + 10.0)
                last = observer.sample()
                if first is not None and last is not None:
                    sent = last.produced - first.produced
                    if stop.is_set() and last.total:
                        console.print(f"stopped early: {last.total:,} transactions were "
                                      "still waiting for a worker")
                observer.close()
                reader.close()
            if worst != 0:
                console.print(f"a worker exited with {worst}; log: {logs / 'workers.log'}")
                code = code or 1
            console.print(f"demo: {stats.summary()}")
            for line in _autoscale_summary(scaler, stats, sent, record):
                console.print(line, highlight=False, soft_wrap=True)
            if scaler.points:
                path = logs / "autoscale.png"
                plot_peak_hour(scaler, record.decided, path, title)
                console.print(f"plot: {path}", highlight=False, soft_wrap=True)
            return code
    finally:
        signal.signal(signal.SIGTERM, previous)
        if simulator is not None and simulator.poll() is None:
            simulator.kill()
            simulator.wait()


class _QuietPool(WorkerPool):
    """Replicas that write to a log file instead of over the live view (a WorkerPool's
    replicas inherit the terminal)."""

    def __init__(self, settings: Settings, status_dir: Path, log_path: Path) -> None:
        super().__init__(settings, status_dir)
        self.log_path = log_path

    def _start(self, slot: int) -> Replica:
        with open(self.log_path, "ab") as log, _output_to(log.fileno()):
            return super()._start(slot)


@contextlib.contextmanager
def _output_to(fd: int) -> Iterator[None]:
    """Point this process's stdout and stderr at ``fd`` while a child is started (the
    live view refreshes only from this thread, so nothing of it lands there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _loggers_to(path: Path, *names: str) -> Iterator[None]:
    """This process's own log lines go to a file while the live view runs."""
    handler = logging.FileHandler(path)
    handler.setFormatter(TextFormatter())
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
        handler.close()


def _wait_for_pool(pool: WorkerPool, stop: threading.Event, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        pool.supervise()
        if any(status is not None and status.assigned for status in pool.statuses()):
            return
        time.sleep(0.1)


@dataclass
class _Record:
    decided: list[tuple[float, int]] = field(default_factory=list)  # (s, decisions so far)
    # input partitions held by each worker, last seen with that many workers
    held: dict[int, list[int]] = field(default_factory=dict)


def _input_partitions(scaler: Autoscaler) -> list[int]:
    prefix = scaler.observer.topic + "["
    return [sum(1 for name in status.assigned if name.startswith(prefix)) if status else 0
            for status in scaler.pool.statuses()]


def _watch_autoscale(reader: DecisionReader, stats: DecisionStats, scaler: Autoscaler,
                     simulator: subprocess.Popen[bytes], stop: threading.Event, live: Live,
                     title: str, record: _Record) -> None:
    """Scale and show figures until the stream is over, decided, and the pool is back to
    its minimum, or a bound on that wait has passed."""
    policy = scaler.policy
    ends_by: float | None = None
    quiet_since: float | None = None
    while not stop.is_set():
        before = stats.total
        reader.poll_into(stats)
        scaler.step()
        now = time.monotonic()
        record.decided.append((now - scaler.started, stats.total))
        held = _input_partitions(scaler)
        record.held[len(held)] = held
        live.update(stats.table(title, _autoscale_rows(scaler, held)), refresh=True)
        if simulator.poll() is None:
            continue
        if simulator.returncode != 0:
            return
        if ends_by is None:
            extra = len(scaler.pool) - policy.min_replicas
            ends_by = now + DRAIN_GRACE_S + policy.down_cooldown_s * extra
        quiet_since = None if stats.total > before else (quiet_since or now)
        drained = (quiet_since is not None and now - quiet_since >= 1.0
                   and bool(scaler.points) and scaler.points[-1].lag == 0)
        if (drained and len(scaler.pool) <= policy.min_replicas) or now > ends_by:
            return


def _input_rate(points: list[Point], window_s: float = 3.0) -> float:
    if len(points) < 2:
        return 0.0
    last = points[-1]
    first = next((p for p in points if p.at >= last.at - window_s), points[0])
    if last.at <= first.at:
        return 0.0
    return (last.produced - first.produced) / (last.at - first.at)


def _autoscale_rows(scaler: Autoscaler, held: list[int]) -> list[tuple[str, str]]:
    policy = scaler.policy
    replicas = len(scaler.pool)
    rows = [("workers", f"{replicas} (min {policy.min_replicas}, max {policy.max_replicas})"),
            # which worker consumes what: a new one may get only labels partitions
            ("  input partitions each", " / ".join(map(str, held)) or "-")]
    if scaler.points:
        lag = scaler.points[-1].lag
        rows.append(("consumer lag", f"{lag:,} ({lag / max(replicas, 1):,.0f} per worker, "
                                     f"target {policy.target_lag:,})"))
        rows.append(("transactions in/s", f"{_input_rate(scaler.points):,.0f}"))
    events = scaler.events
    last = (f", last {events[-1].before} -> {events[-1].after} at {events[-1].at:.0f} s"
            if events else "")
    rows.append(("scaling events", f"{len(events)}{last}"))
    if scaler.last_decision is not None:
        rows.append(("autoscaler", scaler.last_decision.reason))
    return rows


def _event_pauses(scaler: Autoscaler, stats: DecisionStats) -> list[float | None]:
    """Per scaling event, the longest gap in any partition's decisions from the event to
    the next one (at most PAUSE_WINDOW_S); None when no decision came after it."""
    wall_offset = time.time() - time.monotonic()
    latest = max(stats.pauses.last_ms.values(), default=0) / 1000
    pauses: list[float | None] = []
    events = scaler.events
    for i, event in enumerate(events):
        next_at = events[i + 1].at if i + 1 < len(events) else float("inf")
        start = wall_offset + scaler.started + event.at
        end = min(start + PAUSE_WINDOW_S, wall_offset + scaler.started + next_at)
        pauses.append(None if latest < start else stats.pauses.longest(start, end))
    return pauses


def _autoscale_summary(scaler: Autoscaler, stats: DecisionStats, sent: int,
                       record: _Record) -> list[str]:
    events = scaler.events
    ups = sum(1 for e in events if e.after > e.before)
    peak_replicas = max([p.replicas for p in scaler.points] + [e.after for e in events],
                        default=0)
    peak_lag = max((p.lag for p in scaler.points), default=0)
    lines = [f"autoscale: {len(events)} scaling events ({ups} up, {len(events) - ups} down), "
             f"peak {peak_replicas} workers of {scaler.policy.max_replicas} partitions, "
             f"peak lag {peak_lag:,}; decided {len(stats.transaction_ids):,} of {sent:,} "
             f"sent, {stats.duplicates:,} duplicates"]
    for event, pause in zip(events, _event_pauses(scaler, stats), strict=True):
        paused = ("no decisions after it" if pause is None
                  else f"longest decision pause {pause:.1f} s")
        lines.append(f"  at {event.at:5.1f} s: {event.before} -> {event.after} workers, "
                     f"lag {event.lag:,}, {paused} ({event.reason})")
    spreads = [" / ".join(map(str, held)) for count, held in sorted(record.held.items())
               if count > 1]
    if spreads:
        lines.append(f"  input partitions per worker: {'; '.join(spreads)}")
    return lines


def plot_peak_hour(scaler: Autoscaler, decided: list[tuple[float, int]], path: Path,
                   title: str) -> None:
    """Rates, lag and workers over the run, scaling events marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = scaler.points
    fig, (rate_ax, lag_ax, workers_ax) = plt.subplots(3, 1, sharex=True, figsize=(10, 7.5))
    pairs = [(a, b) for a, b in itertools.pairwise(points) if b.at > a.at]
    rate_ax.plot([b.at for _, b in pairs],
                 [(b.produced - a.produced) / (b.at - a.at) for a, b in pairs],
                 label="transactions in", color="#3b6ea5")
    per_second: dict[int, int] = {}
    for at, total in decided:
        per_second[int(at)] = total
    seconds = sorted(per_second)
    rate_ax.plot(seconds[1:],
                 [per_second[s] - per_second[p] for p, s in itertools.pairwise(seconds)],
                 label="decisions out", color="#e0a030")
    rate_ax.set_ylabel("events/s")
    rate_ax.legend(fontsize=8, loc="upper right")
    times = [p.at for p in points]
    lag_ax.plot(times, [p.lag for p in points], label="consumer lag", color="#b04040")
    lag_ax.plot(times, [scaler.policy.target_lag * p.replicas for p in points], "--",
                label="target x workers", color="#888888")
    lag_ax.set_ylabel("events")
    lag_ax.legend(fontsize=8, loc="upper right")
    # a point holds the count before its decision; the events add the counts after
    steps = sorted([(p.at, p.replicas) for p in points]
                   + [(e.at, e.after) for e in scaler.events], key=lambda step: step[0])
    workers_ax.step([t for t, _ in steps], [r for _, r in steps], where="post",
                    color="#2a8a4a", label="workers")
    workers_ax.axhline(scaler.policy.max_replicas, linestyle=":", color="#888888",
                       label="partitions (most workers)")
    workers_ax.set_ylim(0, scaler.policy.max_replicas + 0.5)
    workers_ax.set_ylabel("workers")
    workers_ax.set_xlabel("seconds")
    workers_ax.legend(fontsize=8, loc="upper right")
    for event in scaler.events:
        for ax in (rate_ax, lag_ax, workers_ax):
            ax.axvline(event.at, color="#2a8a4a" if event.after > event.before else "#888888",
                       alpha=0.35, linewidth=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
