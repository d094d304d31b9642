"""Who may score, and how much: API keys (401 / 403) and per-key limits (429), shared by
every server process and replica through Redis (``stream/http/shared_limits.py``).

Every request of a valid key costs a token before its body is read, so requests refused
later (bad media type, too large, invalid, too slow) are paid for too; a valid batch of n
transactions costs n in all. A key also has at most ``api_max_connections_per_key``
requests in flight at once.

``FRAUDSTREAM_API_AUTH=keys`` (the default): every scoring route, platform routes
included, needs a valid ``X-API-Key``. ``platform``: none does, because the hosting
platform (SageMaker, Vertex AI, Azure ML) authenticates its callers and forwards only
their requests, without their credentials. Health, readiness, metrics and the schema
never need a key.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from fraudstream.errors import ConfigError
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.stream.http.keys import KeyStore
from fraudstream.stream.http.metrics import HttpMetrics
from fraudstream.stream.http.openapi import API_KEY_HEADER
from fraudstream.stream.http.ratelimit import retry_after_header
from fraudstream.stream.http.shared_limits import TOO_MANY, SharedLimits

log = logging.getLogger(__name__)
UNAUTHENTICATED = "(no valid key)"  # the metric label of every address's bucket


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
    def __init__(self, keys: KeyStore | None, limiter: SharedLimits,
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
        return cls(keys, shared_limits(settings), metrics)

    @property
    def requires_keys(self) -> bool:
        return self.keys is not None

    @contextlib.contextmanager
    def admit(self, presented: str | None, client: str = "") -> Iterator[str | None]:
        """The key's name (None without key checking) for the request's duration, with a
        token taken and an in-flight slot held; or raise 401 / 403 / 429. A request
        without a valid key is charged to its client address instead, a revoked key's to
        that key: a flood of refused requests is limited too."""
        if self.keys is None:
            yield None
            return
        verdict, key = self.keys.verify(presented)
        if verdict == "unknown":
            if self.limiter.charge(f"address:{client}", 1) > 0:
                self.metrics.rate_limited.labels(UNAUTHENTICATED).inc()
                raise ApiError(429, "too many requests without a valid API key from this "
                                    "address", "rate_limited", {"Retry-After": "1"})
            reason = "no_key" if not presented else "unknown_key"
            raise ApiError(401, f"a valid API key is required in the {API_KEY_HEADER} header",
                           reason, {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})
        assert key is not None
        if verdict == "revoked":
            self._limit(key.name, self.limiter.charge(key.name, 1))
            log.info("request with revoked API key %s refused", key.name)
            raise ApiError(403, f"API key {key.name!r} has been revoked", "revoked_key")
        wait_s, request_id = self.limiter.admit(key.name)
        self._limit(key.name, wait_s)
        try:
            yield key.name
        finally:
            self.limiter.release(key.name, request_id)

    def charge(self, key_name: str | None, transactions: int) -> None:
        """Take the rest of a request's tokens (one per transaction, the first one was
        taken on admission), or raise 429."""
        if key_name is not None:
            self._limit(key_name, self.limiter.charge(key_name, transactions - 1))

    def _limit(self, key_name: str, wait_s: float) -> None:
        if wait_s == TOO_MANY:
            self.metrics.rate_limited.labels(key_name).inc()
            raise ApiError(429, f"key {key_name!r} already has "
                                f"{self.limiter.max_in_flight} requests in flight",
                           "too_many_in_flight", {"Retry-After": "1"})
        if wait_s > 0:
            self.metrics.rate_limited.labels(key_name).inc()
            raise ApiError(429, f"rate limit of {self.limiter.rate:g} transactions/s for "
                                f"key {key_name!r} reached", "rate_limited",
                           {"Retry-After": retry_after_header(wait_s)})


def shared_limits(settings: Settings) -> SharedLimits:
    """The limits of every process of this deployment, in the feature state's Redis."""
    # A request holds its slot for at most the body timeout plus scoring (bounded by the
    # Redis timeout): an entry twice the body timeout old belongs to a dead process.
    stale_s = 2 * settings.api_body_timeout_s + 5
    return SharedLimits(feature_state_store(settings).client, settings.redis_prefix,
                        settings.api_rate, settings.api_burst,
                        settings.api_max_connections_per_key, stale_s,
                        retry_s=settings.breaker_reset_s)
