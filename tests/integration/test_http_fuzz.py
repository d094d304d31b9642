"""Schemathesis against the served OpenAPI schema: generated requests, valid and not,
for every operation; every answer must be documented, match its schema, and never be a
server error; valid data must be accepted and invalid data refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema

from fraudstream.settings import Settings
from fraudstream.stream.http.app import create_app
from tests.http_helpers import live_server, make_keys, serving_settings

EXAMPLES = 60  # per generation mode, across all operations: a few seconds
VERTEX = {"AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
          "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict"}


def _as_accepted(body: Any) -> None:
    """Two things JSON Schema cannot say, made true of the valid cases drawn from it:
    the window of accepted event times moves with the clock (the served schema bounds
    epoch milliseconds, but cannot bound date-time strings), so RFC 3339 timestamps are
    moved to a minute ago; and JSON Schema counts 7.0 as an integer, which the decoder
    (strict, as for Kafka events: a float id may have lost digits) refuses, so integral
    floats drawn for ids and timestamps are sent as integers."""
    if not isinstance(body, dict):
        return
    for key in ("transactions", "instances"):
        if isinstance(body.get(key), list):
            for item in body[key]:
                _as_accepted(item)
    if isinstance(body.get("timestamp"), str):
        body["timestamp"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for key in ("transaction_id", "customer_id", "terminal_id", "timestamp"):
        if isinstance(body.get(key), float) and body[key].is_integer():
            body[key] = int(body[key])


def fuzz(schema: BaseSchema, mode: GenerationMode, url: str, headers: dict[str, str],
         seen: dict[str, set[int]]) -> None:
    """EXAMPLES cases of ``mode`` over every operation, each checked by schemathesis'
    default checks; the status codes seen per operation go into ``seen``."""

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode, headers=headers))
    def check(case: Case) -> None:
        if mode.is_positive:
            # A CSV body is documented as text: JSON Schema cannot describe its rows, so
            # no "valid" one can be drawn (unit and contract tests cover CSV); invalid
            # ones are still sent.
            assume(case.media_type != "text/csv")
            _as_accepted(case.body)
        response = case.call_and_validate(base_url=url, timeout=10)
        seen.setdefault(f"{mode.value} {case.method} {case.path}", set()).add(
            response.status_code)

    check()


def test_the_api_keeps_to_its_own_schema(settings: Settings, tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    app = create_app(serving_settings(settings, keys, api_rate=1e6, api_burst=1_000_000),
                     environ=VERTEX)
    seen: dict[str, set[int]] = {}
    with live_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        started = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(schema, mode, url, {"X-API-Key": keys.alice}, seen)
        assert time.monotonic() - started < 120
    scoring = [k for k in seen if k.startswith("positive POST /v1/score")]
    assert scoring and 200 in seen[scoring[0]], seen
    assert any(422 in codes for k, codes in seen.items() if k.startswith("negative")), seen
