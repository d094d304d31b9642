"""Logging: one JSON object per line for shippers, or plain text for a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_encode = msgspec.json.Encoder().encode
_context: dict[str, Any] = {}  # fields on every line of this process (model version, pid)
_secrets: set[str] = set()


def bind(**fields: Any) -> None:
    """Add fields to every later log line of this process."""
    _context.update(fields)


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line, whoever formats it (librdkafka included)."""
    if value and len(value) >= 4:  # shorter would blank out ordinary words
        _secrets.add(value)


def scrub(line: str) -> str:
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, "***")
    return line


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {**_context, **{k: v for k, v in record.__dict__.items() if k not in _STANDARD}}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **{k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
               for k, v in _extras(record).items()},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(_encode(entry).decode())


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return scrub(line)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("fraudstream.kafka").setLevel(
        logging.WARNING if level != "debug" else logging.DEBUG)
