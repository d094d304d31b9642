"""Who may score, and how much: API keys (401 / 403) and per-key rate limits (429).

``FRAUDSTREAM_API_AUTH=keys`` (the default): every scoring route, platform routes
included, needs a valid ``X-API-Key``. ``platform``: none does, because the hosting
platform (SageMaker, Vertex AI, Azure ML) authenticates its callers and forwards only
their requests, without their credentials. Health, readiness, metrics and the schema
never need a key.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fraudstream.errors import ConfigError
from fraudstream.settings import Settings
from stream.http.keys import KeyStore
from stream.http.metrics import HttpMetrics
from stream.http.openapi import API_KEY_HEADER
from stream.http.ratelimit import RateLimiter, retry_after_header

log = logging.getLogger("fraudstream.http")


class ApiError(Exception):
    """An answer other than 200, with its one-sentence detail."""

    def __init__(self, status: int, detail: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason  # the label of fraudstream_http_rejected_requests
        self.headers = headers or {}


class Gate:
    def __init__(self, keys: KeyStore | None, limiter: RateLimiter,
                 metrics: HttpMetrics) -> None:
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics

    @classmethod
    def from_settings(cls, settings: Settings, metrics: HttpMetrics) -> Gate:
        """Keys from FRAUDSTREAM_API_KEYS_FILE unless FRAUDSTREAM_API_AUTH=platform;
        raises ConfigError when keys are asked for and cannot be read."""
        keys = None
        if settings.api_auth == "keys":
            if not settings.api_keys_file:
                raise ConfigError("no API keys: set FRAUDSTREAM_API_KEYS_FILE (make keys "
                                  "with `fraudstream api-key create NAME`), or "
                                  "FRAUDSTREAM_API_AUTH=platform behind a platform that "
                                  "authenticates its callers")
            keys = KeyStore(Path(settings.api_keys_file), on_error=log.warning)
        return cls(keys, RateLimiter(settings.api_rate, settings.api_burst), metrics)

    @property
    def requires_keys(self) -> bool:
        return self.keys is not None

    def admit(self, presented: str | None) -> str | None:
        """The key's name (None without key checking), or raise 401 / 403 / 429."""
        if self.keys is None:
            return None
        verdict, key = self.keys.verify(presented)
        if verdict == "unknown":
            reason = "no_key" if not presented else "unknown_key"
            raise ApiError(401, f"a valid API key is required in the {API_KEY_HEADER} header",
                           reason, {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})
        assert key is not None
        if verdict == "revoked":
            log.info("request with revoked API key %s refused", key.name)
            raise ApiError(403, f"API key {key.name!r} has been revoked", "revoked_key")
        self._limit(key.name, self.limiter.has_tokens(key.name))
        return key.name

    def charge(self, key_name: str | None, transactions: int) -> None:
        """Take one token per transaction from the key's bucket, or raise 429."""
        if key_name is not None:
            self._limit(key_name, self.limiter.take(key_name, transactions))

    def _limit(self, key_name: str, wait_s: float) -> None:
        if wait_s > 0:
            self.metrics.rate_limited.labels(key_name).inc()
            raise ApiError(429, f"rate limit of {self.limiter.rate:g} transactions/s for "
                                f"key {key_name!r} reached", "rate_limited",
                           {"Retry-After": retry_after_header(wait_s)})
