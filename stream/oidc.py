"""An OIDC client-credentials token source, for Kafka clients without a built-in one.

librdkafka fetches and refreshes OAUTHBEARER tokens itself (``sasl.oauthbearer.method=
oidc``). aiokafka, under Faust, needs a token provider: this one asks the token endpoint
the way librdkafka does (HTTP Basic client authentication, ``grant_type=
client_credentials``, the scope if any) and keeps the token until shortly before it
expires. Errors name the endpoint and the HTTP status, never the secret. The secret is
only ever sent over https (http only when explicitly allowed, for local tests), and a
redirect to a plain-http URL is refused.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from fraudstream.errors import ServiceError

REFRESH_BEFORE_EXPIRY_S = 30.0
DEFAULT_LIFETIME_S = 300.0


class TokenError(ServiceError):
    """The token endpoint did not give a token."""


@dataclass(frozen=True, repr=False)
class ClientCredentials:
    token_endpoint: str
    client_id: str
    client_secret: str
    scope: str | None = None
    allow_http: bool = False

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_endpoint!r}, client_id={self.client_id!r})"


def request_token(credentials: ClientCredentials, timeout_s: float = 10.0,
                  ) -> tuple[str, float]:
    """(access token, seconds it is valid) from one client-credentials grant."""
    _require_https(credentials.token_endpoint, credentials.allow_http)
    form = {"grant_type": "client_credentials"}
    if credentials.scope:
        form["scope"] = credentials.scope
    basic = base64.b64encode(
        f"{urllib.parse.quote(credentials.client_id, safe='')}:"
        f"{urllib.parse.quote(credentials.client_secret, safe='')}".encode()).decode()
    request = urllib.request.Request(
        credentials.token_endpoint, data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Basic {basic}", "Accept": "application/json",
                 "Content-Type": "application/x-www-form-urlencoded"}, method="POST")
    where = credentials.token_endpoint
    try:
        opener = urllib.request.build_opener(_HttpsOnlyRedirects(credentials.allow_http))
        with opener.open(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TokenError(f"the token endpoint {where} refused client "
                         f"{credentials.client_id!r}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TokenError(f"no token from {where}: {reason}") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenError(f"the token endpoint {where} answered without an access_token")
    lifetime = body.get("expires_in", DEFAULT_LIFETIME_S)
    return token, float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME_S


def _require_https(url: str, allow_http: bool) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "https" and not (allow_http and scheme == "http"):
        raise TokenError(f"the token endpoint {url} is not https: refusing to send the "
                         f"client secret to it")


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_http: bool) -> None:
        self._allow_http = allow_http
    # no-untyped-def: urllib's redirect handler signature, as the standard library defines it
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        _require_https(newurl, self._allow_http)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class CachedToken:
    """A token reused until ``REFRESH_BEFORE_EXPIRY_S`` before it expires."""

    def __init__(self, fetch: Callable[[], tuple[str, float]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                token, lifetime = self._fetch()
                margin = min(REFRESH_BEFORE_EXPIRY_S, lifetime / 2)
                self._token, self._refresh_at = token, self._clock() + lifetime - margin
            return self._token
