"""``fraudstream serve``: uvicorn in front of the app, one process or ``--workers N``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TypedDict

import uvicorn
from prometheus_client import CollectorRegistry, start_http_server
from uvicorn.config import LifespanType

from fraudstream.models.registry import Registry
from fraudstream.settings import Settings
from fraudstream.stream.http.app import create_app
from fraudstream.stream.http.auth import Gate
from fraudstream.stream.http.metrics import MULTIPROCESS_ENV, HttpMetrics, exposition_registry
from fraudstream.stream.http.platforms import VertexRoutes
from fraudstream.stream.http.service import require_redis

log = logging.getLogger(__name__)


class _DropColourCopies(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of each message as an extra field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def quiet_uvicorn_extras() -> None:
    """Keep uvicorn's coloured message copies out of our log lines."""
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_DropColourCopies())


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT that asked for the stop is a
    clean exit (code 0, like the worker's) rather than re-raised once it has stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._stop)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, _frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for requests
        self.should_exit = True


class _UvicornOptions(TypedDict):
    """The keyword arguments ``serve`` gives both uvicorn.Config and uvicorn.run."""

    host: str
    port: int
    log_config: None
    access_log: bool
    loop: str
    http: str
    lifespan: LifespanType
    timeout_graceful_shutdown: int


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Serve until SIGTERM or SIGINT (in-flight requests finish first); 0 then."""
    options: _UvicornOptions = {
        "host": host, "port": port, "log_config": None, "access_log": False,
        "loop": "uvloop", "http": "httptools", "lifespan": "off",
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_timeout_s))}
    quiet_uvicorn_extras()
    if workers == 1:
        app = create_app(settings)  # a bad setting or model ends here, in one line
        _metrics_listener(settings, app.state.exposition)
        log.info("serving on %s:%d", host, port)
        _Server(uvicorn.Config(app, **options)).run()
        return 0
    _check(settings)
    # Each process is spawned afresh: hand it the settings (those from the command line
    # too) and a directory for the shared metrics.
    os.environ.update(settings.child_environ())
    with tempfile.TemporaryDirectory(prefix="fraudstream-http-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        _metrics_listener(settings, exposition_registry()[0])
        log.info("serving on %s:%d with %d processes", host, port, workers)
        uvicorn.run("fraudstream.stream.http.app:app_from_env", factory=True, workers=workers,
                    **options)
    return 0


def _metrics_listener(settings: Settings, exposition: CollectorRegistry) -> None:
    """/metrics on its own port (FRAUDSTREAM_API_METRICS_PORT, loopback by default), so
    the API port never shows it to callers; with ``--workers N`` every process's values."""
    if settings.api_metrics_port:
        start_http_server(settings.api_metrics_port, settings.api_metrics_host,
                          registry=exposition)
        log.info("metrics on %s:%d", settings.api_metrics_host, settings.api_metrics_port)


def _check(settings: Settings) -> None:
    """What each worker process would refuse, refused once here in one line."""
    require_redis(settings)
    Gate.from_settings(settings, HttpMetrics.create(None))
    VertexRoutes.from_env(os.environ)
    Registry(settings.model_dir).load_champion()
