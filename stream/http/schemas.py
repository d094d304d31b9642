"""Response bodies, as msgspec structs: they encode the answers and, through
``msgspec.json.schema_components``, describe them in the OpenAPI schema."""

from __future__ import annotations

import msgspec

from fraudstream.stream.decisions import Decision
from fraudstream.stream.http.payloads import Problem


class ScoreBatchResponse(msgspec.Struct):
    """The answer to a batch: one decision per transaction, in request order."""

    decisions: list[Decision]
    model_version: str


class VertexResponse(msgspec.Struct):
    """Vertex AI's prediction answer: one prediction (a decision) per instance."""

    predictions: list[Decision]


class ProblemDetail(msgspec.Struct):
    """Where a fault is (``["body", "transactions", 3, "amount"]``) and why."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationFailed(msgspec.Struct):
    """422: every fault found in the request."""

    detail: list[ProblemDetail]


class ErrorMessage(msgspec.Struct):
    """401, 403, 406, 413, 415, 429: what was wrong, in one sentence."""

    detail: str


class CheckResult(msgspec.Struct):
    ok: bool
    detail: str


class ReadinessReport(msgspec.Struct):
    """``/readyz``: ready only when every check passed; ``failed`` names the others."""

    status: str
    checks: dict[str, CheckResult]
    failed: list[str]
    model_version: str


class Liveness(msgspec.Struct):
    status: str


encode = msgspec.json.Encoder().encode


def validation_failed(problems: list[Problem]) -> ValidationFailed:
    """The 422 body for ``problems``."""
    return ValidationFailed([ProblemDetail(list(p.loc), p.msg, p.type) for p in problems])


RESPONSE_TYPES = (Decision, ScoreBatchResponse, VertexResponse, ValidationFailed,
                  ErrorMessage, ReadinessReport, Liveness)
