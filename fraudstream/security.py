"""The security settings checked as a whole: Kafka SASL/TLS and Redis credentials/TLS.

``Settings.__post_init__`` calls ``normalise`` and ``validate``: a combination that cannot
work (a SASL protocol without a mechanism, SCRAM without a password, TLS files for a
plain ``redis://`` URL, a file that is not there) ends the command with one line naming
the variables, before any client is created. Messages never quote a secret's value.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fraudstream.errors import ConfigError, CredentialsError
from fraudstream.features.cluster_store import ClusterStateStore, state_store_from_url
from fraudstream.features.redis_auth import RedisAuth, refusal
from fraudstream.features.store import RedisStateStore, StateStore

if TYPE_CHECKING:
    from fraudstream.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
REDIS_SCHEMES = ("redis", "rediss", "unix")

_ENV = "FRAUDSTREAM_"


def _var(name: str) -> str:
    return _ENV + name.upper()


def uses_sasl(protocol: str) -> bool:
    return protocol.startswith("SASL_")


def uses_tls(protocol: str) -> bool:
    return protocol in ("SSL", "SASL_SSL")


def validate(settings: Settings) -> None:
    """Raise ConfigError, in one line, for the first security setting that cannot work."""
    for problem in (_kafka_problem(settings), _redis_problem(settings)):
        if problem:
            raise ConfigError(problem)


def _kafka_problem(s: Settings) -> str | None:
    protocol, mechanism = s.kafka_security_protocol, s.kafka_sasl_mechanism
    if protocol not in PROTOCOLS:
        return (f"{_var('kafka_security_protocol')}={protocol!r} is unknown: use "
                f"{', '.join(PROTOCOLS[:-1])} or {PROTOCOLS[-1]}")
    if mechanism is not None and mechanism not in MECHANISMS:
        return (f"{_var('kafka_sasl_mechanism')}={mechanism!r} is unknown: use "
                f"{', '.join(MECHANISMS[:-1])} or {MECHANISMS[-1]}")
    if uses_sasl(protocol) and mechanism is None:
        return (f"{_var('kafka_security_protocol')}={protocol} needs "
                f"{_var('kafka_sasl_mechanism')} ({', '.join(MECHANISMS)})")
    if not uses_sasl(protocol):
        stray = _set(s, "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
                     "kafka_oauth_token_endpoint", "kafka_oauth_client_id",
                     "kafka_oauth_client_secret", "kafka_oauth_scope")
        if stray:
            return (f"{_var(stray[0])} is set but {_var('kafka_security_protocol')}="
                    f"{protocol} does not use SASL (SASL_PLAINTEXT or SASL_SSL does)")
    if not uses_tls(protocol):
        stray = _set(s, "kafka_ssl_ca_location", "kafka_ssl_certificate_location",
                     "kafka_ssl_key_location", "kafka_ssl_key_password")
        if stray:
            return (f"{_var(stray[0])} is set but {_var('kafka_security_protocol')}="
                    f"{protocol} does not use TLS (SSL or SASL_SSL does)")
    if mechanism in PASSWORD_MECHANISMS:
        missing = _unset(s, "kafka_sasl_username", "kafka_sasl_password")
        if missing:
            return f"{_var('kafka_sasl_mechanism')}={mechanism} needs {_var(missing[0])}"
        stray = _set(s, "kafka_oauth_token_endpoint", "kafka_oauth_client_id",
                     "kafka_oauth_client_secret", "kafka_oauth_scope")
        if stray:
            return f"{_var(stray[0])} is only used with OAUTHBEARER, not {mechanism}"
    if mechanism == "OAUTHBEARER":
        missing = _unset(s, "kafka_oauth_token_endpoint", "kafka_oauth_client_id",
                         "kafka_oauth_client_secret")
        if missing:
            return f"{_var('kafka_sasl_mechanism')}=OAUTHBEARER needs {_var(missing[0])}"
        endpoint = urlsplit(s.kafka_oauth_token_endpoint or "")
        schemes = ("https", "http") if s.oidc_allow_http else ("https",)
        if endpoint.scheme not in schemes or not endpoint.netloc:
            # The client secret travels in the request: never in clear text.
            return (f"{_var('kafka_oauth_token_endpoint')} must be an https:// URL, "
                    f"not {s.kafka_oauth_token_endpoint!r} (http:// only with "
                    f"{_var('oidc_allow_http')}=1, for local tests)")
        stray = _set(s, "kafka_sasl_username", "kafka_sasl_password")
        if stray:
            return f"{_var(stray[0])} is not used with OAUTHBEARER (the OIDC client is)"
    if (s.kafka_ssl_certificate_location is None) != (s.kafka_ssl_key_location is None):
        return (f"mutual TLS needs both {_var('kafka_ssl_certificate_location')} and "
                f"{_var('kafka_ssl_key_location')}")
    if s.kafka_ssl_key_password is not None and s.kafka_ssl_key_location is None:
        return f"{_var('kafka_ssl_key_password')} is set without {_var('kafka_ssl_key_location')}"
    return _missing_file(s, "kafka_ssl_ca_location", "kafka_ssl_certificate_location",
                         "kafka_ssl_key_location", allow_directory=("kafka_ssl_ca_location",))


def _redis_problem(s: Settings) -> str | None:
    tls_files = _set(s, "redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")
    if s.redis_url:
        parts = urlsplit(s.redis_url)
        if parts.scheme not in REDIS_SCHEMES:
            return (f"{_var('redis_url')} must start with redis:// or rediss:// (TLS), "
                    f"not {parts.scheme or 'no scheme'}://")
        if tls_files and parts.scheme != "rediss":
            return f"{_var(tls_files[0])} is set but {_var('redis_url')} is not rediss:// (TLS)"
        if parts.password and s.redis_password is not None:
            return (f"the Redis password is in {_var('redis_url')} and in "
                    f"{_var('redis_password')}: set one of them")
        if parts.username and s.redis_username is not None:
            return (f"the Redis user is in {_var('redis_url')} and in "
                    f"{_var('redis_username')}: set one of them")
    if (s.redis_tls_cert_file is None) != (s.redis_tls_key_file is None):
        return (f"Redis mutual TLS needs both {_var('redis_tls_cert_file')} and "
                f"{_var('redis_tls_key_file')}")
    if s.redis_username is not None and s.redis_password is None and not (
            s.redis_url and urlsplit(s.redis_url).password):
        return f"{_var('redis_username')} needs a password ({_var('redis_password')})"
    return _missing_file(s, "redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")


def redis_auth(settings: Settings) -> RedisAuth:
    """The Redis credentials and TLS files of these settings (the URL may carry more)."""
    return RedisAuth(
        username=settings.redis_username,
        password=(settings.redis_password.reveal()
                  if settings.redis_password is not None else None),
        ca_file=settings.redis_tls_ca_file, cert_file=settings.redis_tls_cert_file,
        key_file=settings.redis_tls_key_file)


def _set(s: Settings, *names: str) -> list[str]:
    return [name for name in names if getattr(s, name) is not None]


def _unset(s: Settings, *names: str) -> list[str]:
    return [name for name in names if getattr(s, name) is None]


def _missing_file(s: Settings, *names: str, allow_directory: tuple[str, ...] = ()) -> str | None:
    for name in names:
        path = getattr(s, name)
        if path is None:
            continue
        if name in allow_directory and (path == "probe" or os.path.isdir(path)):
            continue
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            return f"{_var(name)}={path}: no such readable file"
    return None


def feature_state_store(settings: Settings,
                        timeout_s: float | None = None) -> RedisStateStore | ClusterStateStore:
    """The feature state's Redis (single or cluster) with these settings' credentials and
    TLS files: every process that reads or writes feature state connects through here."""
    if not settings.redis_url:
        raise ConfigError("no Redis configured: set FRAUDSTREAM_REDIS_URL")
    timeout = settings.redis_timeout_ms / 1000.0 if timeout_s is None else timeout_s
    return state_store_from_url(settings.redis_url, settings.redis_cluster, timeout,
                                redis_auth(settings))


def check_feature_state_store(store: StateStore, settings: Settings) -> str | None:
    """One read before the first event. A Redis that refuses the credentials or the TLS
    handshake ends the start (CredentialsError): no retry with the same settings can
    succeed. A Redis that is down is degraded mode's to handle: the reason is returned."""
    from fraudstream.settings import redact_url  # settings imports this module

    try:
        store.get_many([b"fraudstream:warm-up"])
    except Exception as exc:
        reason = refusal(exc)
        if reason is not None:
            raise CredentialsError(
                f"Redis at {redact_url(settings.redis_url)} {reason} (check "
                f"FRAUDSTREAM_REDIS_URL and the FRAUDSTREAM_REDIS_* settings)") from None
        return str(exc)
    return None
