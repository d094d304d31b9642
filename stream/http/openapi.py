"""The OpenAPI schema: request and response bodies from the same msgspec structs that
decode and encode them, and the stream's rules written out where JSON Schema can say
them (id lengths, amount range, the event-time window for epoch-millisecond
timestamps). The window moves with the clock, so the schema is rebuilt for every
``/openapi.json`` request."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from fraudstream.models.decisions import OUTCOMES
from fraudstream.stream.events import MAX_AMOUNT, MAX_ID_LENGTH, MAX_TS_MS, MIN_TS_MS, Transaction
from fraudstream.stream.http.payloads import BATCH_FIELD, CSV_COLUMNS, VERTEX_FIELD
from fraudstream.stream.http.schemas import RESPONSE_TYPES, ErrorMessage, ValidationFailed

API_KEY_HEADER = "X-API-Key"
SECURITY_SCHEME = "ApiKey"
REF = "#/components/schemas/{name}"
# Epoch-ms bounds are published this far inside the window, so a value taken from the
# schema is still inside it when the request arrives.
WINDOW_MARGIN_MS = 10 * 60 * 1000


class ScoreBatchRequest(msgspec.Struct):
    """Up to the batch limit of transactions, scored together in order."""

    transactions: list[Transaction]


class VertexRequest(msgspec.Struct):
    """Vertex AI's prediction request: the instances are transactions."""

    instances: list[Transaction]
    parameters: dict[str, Any] | None = None


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description,
                            "content": _json(ErrorMessage.__name__)}
    if headers:
        body["headers"] = headers
    return body


INVALID = {"description": "A field is missing, ill-typed or out of range: each fault "
                          "with where it is (loc) and why (msg)",
           "content": _json(ValidationFailed.__name__)}
TOO_LARGE = error("The body is larger than FRAUDSTREAM_API_MAX_BODY_BYTES")
UNSUPPORTED = error("The body is not of a content type this route reads")
AUTH_RESPONSES = {
    "401": error("No API key, or one that is not known",
                 {"WWW-Authenticate": {"schema": {"type": "string"}}}),
    "403": error("The API key was revoked"),
    "429": error("The key's rate limit is used up; retry after Retry-After seconds",
                 {"Retry-After": {"schema": {"type": "integer"}}}),
}


def scoring_operation(summary: str, request: dict[str, Any], ok: dict[str, Any],
                      keys: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a scoring route: body, answers, and the API key when asked."""
    responses = {"200": ok, "413": TOO_LARGE, "415": UNSUPPORTED, "422": INVALID,
                 **(extra or {})}
    if keys:
        responses.update(AUTH_RESPONSES)
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": request},
        "responses": responses,
    }
    operation["security"] = [{SECURITY_SCHEME: []}] if keys else []
    return operation


def score_request() -> dict[str, Any]:
    one = {"allOf": [_ref("Transaction"), {"not": {"required": [BATCH_FIELD]}}]}
    return {"application/json": {"schema": {"oneOf": [one, _ref("ScoreBatchRequest")]}}}


def score_ok() -> dict[str, Any]:
    return {"description": "The decision, or for a batch the decisions in request order",
            "headers": {"X-Model-Version": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {
                "oneOf": [_ref("Decision"), _ref("ScoreBatchResponse")]}}}}


def invocations_request() -> dict[str, Any]:
    csv_doc = ("One transaction per row: " + ",".join(CSV_COLUMNS) + " (the last three "
               "optional), or columns named by a header row starting with transaction_id")
    return {**score_request(),
            "text/csv": {"schema": {"type": "string", "description": csv_doc}}}


def invocations_ok() -> dict[str, Any]:
    ok = score_ok()
    ok["content"]["text/csv"] = {"schema": {
        "type": "string", "description": "With Accept: text/csv, one row per transaction: "
        "transaction_id,customer_id,score,decision,model_version,reasons,degraded (lists "
        "joined with ';')"}}
    ok["description"] += " (JSON, or CSV when Accept asks for text/csv)"
    return ok


def vertex_request() -> dict[str, Any]:
    return _json("VertexRequest")


def vertex_ok() -> dict[str, Any]:
    return {"description": f"One prediction (a decision) per {VERTEX_FIELD[:-1]}",
            "content": _json("VertexResponse")}


def _components(max_batch: int) -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        (Transaction, ScoreBatchRequest, VertexRequest, *RESPONSE_TYPES), ref_template=REF)
    identifier = {"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
        {"type": "integer", "minimum": -(10 ** (MAX_ID_LENGTH - 1) - 1),
         "maximum": 10 ** MAX_ID_LENGTH - 1,
         "description": "An integer literal: 7, never 7.0 (a float id may have lost "
                        "digits)"}]}
    transaction = schemas["Transaction"]["properties"]
    for name in ("transaction_id", "customer_id", "terminal_id"):
        transaction[name] = copy.deepcopy(identifier)
    transaction["amount"] = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_AMOUNT}
    for wrapper, field in (("ScoreBatchRequest", BATCH_FIELD),
                           ("VertexRequest", VERTEX_FIELD)):
        items = schemas[wrapper]["properties"][field]
        items.update(minItems=1, maxItems=max_batch)
    decision = schemas["Decision"]["properties"]
    decision["score"].update(minimum=0, maximum=1)
    decision["decision"]["enum"] = list(OUTCOMES)
    return schemas


def _timestamp(max_age_ms: int, max_lead_ms: int, now_ms: int) -> dict[str, Any]:
    low = max(MIN_TS_MS, now_ms - max_age_ms + WINDOW_MARGIN_MS)
    high = min(MAX_TS_MS, now_ms + max(0, max_lead_ms - WINDOW_MARGIN_MS))
    return {"anyOf": [
        {"type": "integer", "minimum": low, "maximum": high,
         "description": "Event time in epoch milliseconds (an integer literal), inside "
                        "the accepted window "
                        "(FRAUDSTREAM_MAX_EVENT_AGE_DAYS back, FRAUDSTREAM_MAX_EVENT_LEAD_S "
                        "ahead; these bounds were taken when this schema was served)"},
        {"type": "string", "format": "date-time",
         "description": "Event time in RFC 3339 with a zone, inside the same window"}]}


def install(app: FastAPI, max_batch: int, max_age_ms: int, max_lead_ms: int,
            clock: Callable[[], float] = time.time) -> None:
    """Serve the schema with the components above and the current event-time window."""
    base: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not base:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(_components(max_batch))
            components["securitySchemes"] = {SECURITY_SCHEME: {
                "type": "apiKey", "in": "header", "name": API_KEY_HEADER}}
            base.update(schema)
        schema = copy.deepcopy(base)
        schema["components"]["schemas"]["Transaction"]["properties"]["timestamp"] = (
            _timestamp(max_age_ms, max_lead_ms, int(clock() * 1000)))
        return schema

    # Assigning app.openapi is FastAPI's documented way to customise the schema, but its
    # annotations declare a method, which mypy will not let an instance reassign.
    app.openapi = openapi  # type: ignore[method-assign]  # documented FastAPI override
