"""fraudstream.logs: one JSON object per line, context on every line, no secret ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fraudstream import logs
from fraudstream.settings import Settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("fraudstream.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    saved_context, saved_secrets = dict(logs._context), set(logs._secrets)
    yield stream
    logger.removeHandler(handler)
    logs._context.clear()
    logs._context.update(saved_context)
    logs._secrets.clear()
    logs._secrets.update(saved_secrets)


def test_each_line_is_one_json_object_with_the_fields_shippers_index(
        captured: io.StringIO) -> None:
    logs.bind(model_version="v7")
    logging.getLogger("fraudstream.test-logs").info(
        "dead-lettered message", extra={"partition": 3, "offset": 42,
                                        "transaction_id": "tx-1"})
    entry = json.loads(captured.getvalue().strip())
    assert entry["level"] == "info" and entry["event"] == "dead-lettered message"
    assert entry["partition"] == 3 and entry["offset"] == 42
    assert entry["transaction_id"] == "tx-1" and entry["model_version"] == "v7"


def test_registered_secrets_never_reach_a_line(captured: io.StringIO) -> None:
    settings = Settings(redis_url="redis://user:s3cr3t-pass@10.0.0.1:6379/0")
    for secret in settings.secrets():
        logs.register_secret(secret)
    log = logging.getLogger("fraudstream.test-logs")
    log.warning("cannot reach %s", settings.redis_url)
    log.warning("third-party text", extra={"detail": "password=s3cr3t-pass"})
    text = captured.getvalue()
    assert "s3cr3t-pass" not in text
    assert text.count("***") == 2


def test_text_format_scrubs_too() -> None:
    logs.register_secret("hunter2-long")
    try:
        record = logging.LogRecord("x", logging.INFO, "", 0, "token hunter2-long", (), None)
        assert "hunter2-long" not in logs.TextFormatter().format(record)
    finally:
        logs._secrets.discard("hunter2-long")
