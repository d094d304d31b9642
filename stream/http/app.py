"""The FastAPI app behind ``fraudstream serve``.

Routes: ``POST /v1/score`` (one transaction or a batch), ``GET /healthz`` (alive),
``GET /readyz`` (broker, Redis, model), ``GET /metrics`` (with its own bearer token, or
on its own port), ``GET /openapi.json`` and ``/docs`` (when enabled); for
SageMaker ``GET /ping`` and ``POST /invocations``; for Vertex AI the routes it names in
``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``.

Scoring runs on the event loop, one request at a time per server process, like the
stream worker's loop: it costs microseconds (one Redis round trip bounded by
``FRAUDSTREAM_REDIS_TIMEOUT_MS`` and the circuit breaker, then the compiled model), less
than handing it to a thread would. Scale with ``--workers``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudstream import logs, model_trust
from fraudstream.settings import Settings
from fraudstream.stream.http import openapi
from fraudstream.stream.http.auth import ApiError, Gate
from fraudstream.stream.http.metrics import HttpMetrics, exposition_registry
from fraudstream.stream.http.model import ModelHolder
from fraudstream.stream.http.openapi import API_KEY_HEADER
from fraudstream.stream.http.payloads import (
    InvalidRequest,
    ParsedTransactions,
    parse_csv,
    parse_instances,
    parse_score_body,
)
from fraudstream.stream.http.platforms import (
    CSV,
    JSON,
    VertexRoutes,
    answer_type,
    decisions_csv,
    is_json,
    media_type,
)
from fraudstream.stream.http.readiness import Readiness
from fraudstream.stream.http.schemas import (
    CheckResult,
    ErrorMessage,
    Liveness,
    ReadinessReport,
    ScoreBatchResponse,
    VertexResponse,
    encode,
    validation_failed,
)
from fraudstream.stream.http.scoring import Scored
from fraudstream.stream.http.service import ScoringService, build_service

log = logging.getLogger(__name__)

Parser = Callable[..., ParsedTransactions]
Renderer = Callable[[Scored, ParsedTransactions], Response]
MODEL_HEADER = "X-Model-Version"


def model_holder(app: FastAPI) -> ModelHolder:
    """The app's model: every request scores with ``model_holder(app).current()``;
    ``replace`` swaps it (hot reload of a promoted champion plugs in here)."""
    model: ModelHolder = app.state.model  # Starlette's State holds Any; create_app set it
    return model


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it grows past ``limit`` bytes, whatever
    Content-Length said (a declared length over the limit is refused before reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body of {int(declared)} bytes exceeds the {limit}-byte "
                            "limit", "too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body exceeds the {limit}-byte limit", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class Endpoints:
    def __init__(self, service: ScoringService, gate: Gate, readiness: Readiness,
                 exposition: CollectorRegistry) -> None:
        self.service = service
        self.gate = gate
        self.readiness = readiness
        self.exposition = exposition
        self.metrics: HttpMetrics = service.metrics
        self.body_limit = service.settings.api_max_body_bytes
        self.body_timeout_s = service.settings.api_body_timeout_s
        token = service.settings.api_metrics_token
        self.metrics_token = token.reveal() if token is not None else None

    # -- scoring ---------------------------------------------------------------------

    async def score(self, request: Request) -> Response:
        """``POST /v1/score``: one transaction or ``{"transactions": [...]}``."""
        started = time.perf_counter()
        with self.gate.admit(request.headers.get(API_KEY_HEADER), client_of(request)) as key:
            _require_json(request)
            return await self._run(request, started, key, parse_score_body,
                                   self._json_answer)

    async def invocations(self, request: Request) -> Response:
        """SageMaker: JSON or CSV in (Content-Type), JSON or CSV out (Accept)."""
        started = time.perf_counter()
        with self.gate.admit(request.headers.get(API_KEY_HEADER), client_of(request)) as key:
            kind = media_type(request.headers.get("content-type"))
            if is_json(kind):
                parse: Parser = parse_score_body
            elif kind == CSV:
                parse = parse_csv
            else:
                raise ApiError(415, f"Content-Type {kind} is not {JSON} or {CSV}",
                               "unsupported_media_type")
            answer = answer_type(request.headers.get("accept"))
            if answer is None:
                raise ApiError(406, f"Accept must allow {JSON} or {CSV}", "not_acceptable")
            render = self._json_answer if answer == JSON else self._csv_answer
            return await self._run(request, started, key, parse, render)

    async def vertex_predict(self, request: Request) -> Response:
        """Vertex AI: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out."""
        started = time.perf_counter()
        with self.gate.admit(request.headers.get(API_KEY_HEADER), client_of(request)) as key:
            _require_json(request)
            return await self._run(request, started, key, parse_instances,
                                   self._vertex_answer)

    async def _run(self, request: Request, started: float, key: str | None,
                   parse: Parser, render: Renderer) -> Response:
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await read_body(request, self.body_limit)
        except ClientDisconnect:
            return Response(status_code=400)
        except TimeoutError:
            # A client trickling its body holds a connection and an in-flight slot: cut
            # it off (the connection closes with the answer).
            raise ApiError(408, f"the body took longer than {self.body_timeout_s:g} s to "
                                f"arrive", "body_timeout", {"Connection": "close"}) from None
        read = time.perf_counter()
        parsed = parse(body, self.service.limits, int(time.time() * 1000))
        self.gate.charge(key, len(parsed))
        parsed_at = time.perf_counter()
        scored = self.service.scorer.score(parsed.transactions, parsed.timestamps_ms, started)
        response = render(scored, parsed)
        stage = self.metrics.stage_seconds
        stage.labels("read").observe(read - started)
        stage.labels("parse").observe(parsed_at - read)
        stage.labels("features").observe(scored.features_s)
        stage.labels("score").observe(scored.score_s)
        stage.labels("encode").observe(time.perf_counter() - parsed_at - scored.features_s
                                       - scored.score_s)
        return response

    def _json_answer(self, scored: Scored, parsed: ParsedTransactions) -> Response:
        content = (ScoreBatchResponse(scored.decisions, scored.model_version)
                   if parsed.is_batch else scored.decisions[0])
        return Response(encode(content), media_type=JSON,
                        headers={MODEL_HEADER: scored.model_version})

    def _csv_answer(self, scored: Scored, parsed: ParsedTransactions) -> Response:
        return Response(decisions_csv(scored.decisions), media_type=CSV,
                        headers={MODEL_HEADER: scored.model_version})

    def _vertex_answer(self, scored: Scored, parsed: ParsedTransactions) -> Response:
        return Response(encode(VertexResponse(scored.decisions)), media_type=JSON,
                        headers={MODEL_HEADER: scored.model_version})

    # -- health ----------------------------------------------------------------------

    async def healthz(self) -> Response:
        """Liveness: the process serves."""
        return Response(encode(Liveness("alive")), media_type=JSON)

    async def readyz(self) -> Response:
        """Readiness: 200 when every check passed, else 503 naming the failed ones."""
        checks = await run_in_threadpool(self.readiness.checks)
        failed = [c.name for c in checks if not c.ok]
        report = ReadinessReport(
            status="not ready" if failed else "ready",
            checks={c.name: CheckResult(c.ok, c.detail) for c in checks}, failed=failed,
            model_version=self.service.model.current().version)
        return Response(encode(report), status_code=503 if failed else 200,
                        media_type=JSON)

    async def ping(self) -> Response:
        """SageMaker's health check: 200 with an empty body while a model is loaded.
        Redis is left out on purpose (see README): a replaced instance cannot mend a
        shared Redis, and degraded decisions beat none."""
        return Response(status_code=200,
                        headers={MODEL_HEADER: self.service.model.current().version})

    async def vertex_health(self) -> Response:
        """Vertex AI's health check: 200 while a model is loaded (as ``/ping``)."""
        return Response(encode(Liveness("ready")), media_type=JSON,
                        headers={MODEL_HEADER: self.service.model.current().version})

    async def metrics_text(self, request: Request) -> Response:
        """Prometheus text format, every process's values with ``--workers N``; only
        with ``Authorization: Bearer <FRAUDSTREAM_API_METRICS_TOKEN>``."""
        presented = request.headers.get("authorization", "")
        expected = f"Bearer {self.metrics_token}".encode()
        if not hmac.compare_digest(presented.encode(), expected):
            raise ApiError(401, "/metrics needs its bearer token", "metrics_token",
                           {"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(self.exposition), media_type=CONTENT_TYPE_LATEST)


def client_of(request: Request) -> str:
    """The caller's address (the proxy's, behind one), for requests without a valid key."""
    return request.client.host if request.client else "unknown"


def _require_json(request: Request) -> None:
    kind = media_type(request.headers.get("content-type"))
    if not is_json(kind):
        raise ApiError(415, f"Content-Type {kind} is not {JSON}", "unsupported_media_type")


class RequestTimer:
    """Pure ASGI middleware: every request's time into the histogram, labelled with the
    route template (never the raw path: no label per made-up URL) and the status."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request_seconds.labels(route, str(status)).observe(
                time.perf_counter() - started)


def create_app(settings: Settings, environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app, with its model loaded and warmed up (raises ConfigError, ArtifactError
    on a bad configuration or model)."""
    environ = os.environ if environ is None else environ
    exposition, registry = exposition_registry()
    metrics = HttpMetrics.create(registry)
    vertex = VertexRoutes.from_env(environ)  # refused before anything connects
    gate = Gate.from_settings(settings, metrics)
    service = build_service(settings, metrics)
    endpoints = Endpoints(service, gate, Readiness(settings, service.model), exposition)
    docs = settings.api_docs  # the schema maps the attack surface: off unless asked for
    app = FastAPI(title="fraudstream", version=metadata.version("fraudstream"),
                  description="Real-time fraud scoring: the stream's features and model "
                              "over HTTP", redoc_url=None,
                  docs_url="/docs" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.model = service.model
    app.state.service = service
    app.state.exposition = exposition
    _add_routes(app, endpoints, gate.requires_keys, vertex)
    _add_error_handlers(app, metrics)
    app.add_middleware(RequestTimer, metrics=metrics)
    openapi.install(app, settings.api_max_batch, int(settings.max_event_age_days * 86_400_000),
                    int(settings.max_event_lead_s * 1000))
    if not gate.requires_keys:
        log.warning("FRAUDSTREAM_API_AUTH=platform: no route checks API keys; the hosting "
                    "platform must authenticate every caller")
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for ``--workers N``: each process reads the settings that
    ``fraudstream serve`` handed down in its environment."""
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    for secret in settings.secrets():
        logs.register_secret(secret)
    model_trust.configure(settings)
    from fraudstream.stream.http.server import quiet_uvicorn_extras

    quiet_uvicorn_extras()
    return create_app(settings)


def _add_routes(app: FastAPI, e: Endpoints, keys: bool, vertex: VertexRoutes | None) -> None:
    def route(path: str, endpoint: Callable[..., Awaitable[Response]], method: str,
              extra: dict[str, Any]) -> None:
        app.add_api_route(path, endpoint, methods=[method], response_class=Response,
                          openapi_extra=extra)

    route("/v1/score", e.score, "POST", openapi.scoring_operation(
        "Score one transaction or a batch", openapi.score_request(), openapi.score_ok(),
        keys))
    route("/invocations", e.invocations, "POST", openapi.scoring_operation(
        "SageMaker inference: JSON or CSV", openapi.invocations_request(),
        openapi.invocations_ok(), keys,
        {"406": openapi.error("Accept allows neither application/json nor text/csv")}))
    route("/healthz", e.healthz, "GET", _doc("Liveness: the process serves", "Liveness"))
    route("/readyz", e.readyz, "GET", {
        **_doc("Readiness: broker reachable, Redis answering, model loaded",
               "ReadinessReport"),
        "responses": {"200": _json_doc("Ready", "ReadinessReport"),
                      "503": _json_doc("Not ready: `failed` names the checks that failed",
                                       "ReadinessReport")}})
    route("/ping", e.ping, "GET", {"summary": "SageMaker health check",
                                   "responses": {"200": {"description": "Ready to score "
                                                                        "(empty body)"}}})
    if e.metrics_token is not None:  # otherwise only on FRAUDSTREAM_API_METRICS_PORT
        route("/metrics", e.metrics_text, "GET", {
            "summary": "Prometheus metrics (bearer token)",
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "401": openapi.error("No or wrong bearer token")}})
    if vertex is not None:
        if vertex.health is not None:
            route(vertex.health, e.vertex_health, "GET",
                  _doc("Vertex AI health check", "Liveness"))
        if vertex.predict is not None:
            route(vertex.predict, e.vertex_predict, "POST", openapi.scoring_operation(
                "Vertex AI prediction", openapi.vertex_request(), openapi.vertex_ok(),
                keys))


def _json_doc(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": openapi.REF.format(name=schema)}}}}


def _doc(summary: str, schema: str) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": _json_doc("OK", schema)}}


def _add_error_handlers(app: FastAPI, metrics: HttpMetrics) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        metrics.rejected.labels(exc.reason).inc()
        return Response(encode(ErrorMessage(exc.detail)), status_code=exc.status,
                        media_type=JSON, headers=exc.headers)

    async def invalid(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidRequest)
        too_large = any(p.type == "too_large" for p in exc.problems)
        metrics.rejected.labels("too_large" if too_large else "invalid").inc()
        return Response(encode(validation_failed(exc.problems)),
                        status_code=413 if too_large else 422, media_type=JSON)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(InvalidRequest, invalid)
