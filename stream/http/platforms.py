"""What the managed ML platforms ask of a serving container, in one place.

- AWS SageMaker runs ``docker run IMAGE serve``: the server listens on 8080 (or
  ``SAGEMAKER_BIND_TO_PORT`` in an inference pipeline), ``GET /ping`` answers 200 when
  it can score, ``POST /invocations`` takes JSON or CSV (``Content-Type``) and answers
  JSON or CSV (``Accept``).
- Google Vertex AI sets ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE`` and
  ``AIP_PREDICT_ROUTE``; predictions go ``{"instances": [...]}`` in,
  ``{"predictions": [...]}`` out.
- Azure ML calls an entry script's ``init()`` and ``run(raw_data)``: see
  ``stream.http.azureml``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fraudstream.errors import ConfigError
from fraudstream.stream.decisions import Decision

SAGEMAKER_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
VERTEX_PORT_ENV = "AIP_HTTP_PORT"
VERTEX_HEALTH_ENV = "AIP_HEALTH_ROUTE"
VERTEX_PREDICT_ENV = "AIP_PREDICT_ROUTE"
JSON = "application/json"
CSV = "text/csv"
CSV_ANSWER_COLUMNS = ("transaction_id", "customer_id", "score", "decision", "model_version",
                      "reasons", "degraded")


def resolve_port(cli_port: int | None, settings_port: int,
                 environ: Mapping[str, str]) -> int:
    """--port, else the port a platform names (Vertex AI, a SageMaker pipeline), else
    FRAUDSTREAM_HTTP_PORT (8080: SageMaker's)."""
    if cli_port is not None:
        return cli_port
    for name in (VERTEX_PORT_ENV, SAGEMAKER_PORT_ENV):
        raw = environ.get(name)
        if raw:
            try:
                port = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a port number") from None
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name}={raw!r} is not in 1..65535")
            return port
    return settings_port


@dataclass(frozen=True)
class VertexRoutes:
    health: str | None
    predict: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VertexRoutes | None:
        """The routes Vertex AI sends health checks and predictions to, when it set them."""
        health = environ.get(VERTEX_HEALTH_ENV) or None
        predict = environ.get(VERTEX_PREDICT_ENV) or None
        for name, route in ((VERTEX_HEALTH_ENV, health), (VERTEX_PREDICT_ENV, predict)):
            if route is not None and not route.startswith("/"):
                raise ConfigError(f"{name}={route!r} must be a path starting with /")
        if health is None and predict is None:
            return None
        return cls(health, predict)


def media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``; missing -> JSON."""
    if not header:
        return JSON
    return header.split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind == JSON or kind.endswith("+json")


def answer_type(accept: str | None) -> str | None:
    """The answer's media type for an Accept header: JSON unless CSV is asked for
    first; None when neither is acceptable."""
    if not accept:
        return JSON
    for part in accept.split(","):
        kind = media_type(part)
        if kind == CSV:
            return CSV
        if is_json(kind) or kind in ("*/*", "application/*"):
            return JSON
        if kind == "text/*":
            return CSV
    return None


def decisions_csv(decisions: Sequence[Decision]) -> bytes:
    """One row per decision, ``CSV_ANSWER_COLUMNS``; the score with every digit."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for d in decisions:
        writer.writerow([d.transaction_id, d.customer_id, repr(d.score), d.decision,
                         d.model_version, ";".join(d.reasons), ";".join(d.degraded)])
    return out.getvalue().encode("utf-8")
