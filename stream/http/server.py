"""``fraudstream serve``: uvicorn in front of the app, one process or ``--workers N``."""

from __future__ import annotations

import logging
import os
import tempfile

import uvicorn

from fraudstream.settings import Settings
from models.registry import Registry
from stream.http.app import create_app
from stream.http.auth import Gate
from stream.http.metrics import MULTIPROCESS_ENV, HttpMetrics
from stream.http.platforms import VertexRoutes
from stream.http.service import require_redis

log = logging.getLogger("fraudstream.http")


class _DropColourCopies(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of each message as an extra field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def quiet_uvicorn_extras() -> None:
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_DropColourCopies())


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Serve until SIGTERM or SIGINT (in-flight requests finish first); 0 then."""
    options = {"host": host, "port": port, "log_config": None, "access_log": False,
               "loop": "uvloop", "http": "httptools", "lifespan": "off",
               "timeout_graceful_shutdown": max(1, round(settings.shutdown_timeout_s))}
    quiet_uvicorn_extras()
    if workers == 1:
        app = create_app(settings)  # a bad setting or model ends here, in one line
        log.info("serving on %s:%d", host, port)
        uvicorn.run(app, **options)
        return 0
    _check(settings)
    # Each process is spawned afresh: hand it the settings (those from the command line
    # too) and a directory for the shared metrics.
    os.environ.update(settings.child_environ())
    with tempfile.TemporaryDirectory(prefix="fraudstream-http-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        log.info("serving on %s:%d with %d processes", host, port, workers)
        uvicorn.run("stream.http.app:app_from_env", factory=True, workers=workers,
                    **options)
    return 0


def _check(settings: Settings) -> None:
    """What each worker process would refuse, refused once here in one line."""
    require_redis(settings)
    Gate.from_settings(settings, HttpMetrics.create(None))
    VertexRoutes.from_env(os.environ)
    Registry(settings.model_dir).load_champion()
