"""Azure ML's scoring-script contract: ``init()`` once, ``run(raw_data)`` per request.

Azure ML's inference server imports the entry script (``deploy/azureml/score.py``, which
re-exports them), calls ``init()`` when the deployment starts and ``run`` with each
request's body; ``shutdown()`` (also run at exit) stops what ``init()`` started.
``AZUREML_MODEL_DIR`` is where Azure ML mounted the registered model: the registry
directory ``fraudstream train`` wrote (its ``CHAMPION`` file is found at that path or up
to two folders below it). Everything else comes from the usual ``FRAUDSTREAM_*``
variables (the deployment's ``environment_variables``): Redis above all. The body is
what ``POST /v1/score`` takes; so is the answer. A bad body returns ``{"detail": [...]}``
with the same problems as the HTTP 422.

Azure ML authenticates callers (endpoint keys or tokens), so no API key is checked here.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from fraudstream import model_trust
from fraudstream.errors import ConfigError
from fraudstream.models.registry import CHAMPION_FILE
from fraudstream.settings import Settings
from fraudstream.stream.http.metrics import HttpMetrics
from fraudstream.stream.http.payloads import InvalidRequest, parse_score_body
from fraudstream.stream.http.schemas import ScoreBatchResponse, validation_failed
from fraudstream.stream.http.service import ScoringService, build_service

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
_service: ScoringService | None = None
_lock = threading.Lock()  # the breaker and scorer are single-threaded by design


def find_registry(root: Path) -> Path:
    """The registry under Azure ML's model directory: ``root`` itself, or the one
    folder up to two levels below it that holds a CHAMPION file."""
    if (root / CHAMPION_FILE).is_file():
        return root
    found = sorted({p.parent for pattern in (f"*/{CHAMPION_FILE}", f"*/*/{CHAMPION_FILE}")
                    for p in root.glob(pattern)})
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ConfigError(f"{what} model registry (a folder with a {CHAMPION_FILE} file) "
                          f"under {MODEL_DIR_ENV}={root}")
    return found[0]


def init() -> None:
    """Load the champion from ``AZUREML_MODEL_DIR`` (or FRAUDSTREAM_MODEL_DIR when it is
    not set) and connect to Redis. Called again, it replaces the service and stops the
    old one's registry follower."""
    global _service
    settings = Settings.from_env()
    model_trust.configure(settings)
    model_dir = os.environ.get(MODEL_DIR_ENV)
    registry = find_registry(Path(model_dir)) if model_dir else Path(settings.model_dir)
    service = build_service(settings, HttpMetrics.create(None), registry)
    with _lock:
        old, _service = _service, service
    if old is not None:
        old.model.close()


def shutdown() -> None:
    """Stop the registry follower that ``init()`` started (also run at exit): the
    inference server has no shutdown hook of its own."""
    global _service
    with _lock:
        old, _service = _service, None
    if old is not None:
        old.model.close()


atexit.register(shutdown)


def run(raw_data: str | bytes) -> dict[str, Any]:
    """Score the body: a decision for one transaction, ``{"decisions": [...],
    "model_version": ...}`` for a batch, or ``{"detail": [...]}`` when it is invalid."""
    if _service is None:
        raise RuntimeError("init() has not been called")
    body = raw_data.encode("utf-8") if isinstance(raw_data, str) else raw_data
    started = time.perf_counter()
    with _lock:
        try:
            parsed = parse_score_body(body, _service.limits, int(time.time() * 1000))
        except InvalidRequest as exc:
            return _json_object(validation_failed(exc.problems))
        scored = _service.scorer.score(parsed.transactions, parsed.timestamps_ms, started)
    answer = (ScoreBatchResponse(scored.decisions, scored.model_version) if parsed.is_batch
              else scored.decisions[0])
    return _json_object(answer)


def _json_object(value: msgspec.Struct) -> dict[str, Any]:
    """``value`` as the JSON object Azure ML returns (a Struct that is not
    ``array_like`` always becomes a dict; msgspec types the result as Any)."""
    built = msgspec.to_builtins(value)
    assert isinstance(built, dict)
    return built
