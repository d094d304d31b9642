"""One frozen settings object, read from ``FRAUDSTREAM_*`` environment variables in one place."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fraudstream import security
from fraudstream.errors import ConfigError
from fraudstream.features.definitions import TERMINAL_RING_DAYS

PREFIX = "FRAUDSTREAM_"


class Secret(str):
    """A string that never prints its value (logs, reprs, error messages)."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return format("***", spec)

    def reveal(self) -> str:
        return str.__str__(self)


def setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


def redact_url(url: str | None) -> str | None:
    """The URL with any password replaced by ***."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, repr=False)
class Settings:
    kafka_bootstrap: str | None = setting(None, "Kafka bootstrap servers; embedded broker if unset")
    redis_url: str | None = setting(None, "Redis URL; embedded server if unset")
    redis_cluster: bool = setting(False, "The Redis URL names a node of a Redis Cluster")
    topic_transactions: str = setting("transactions", "Input topic of transaction events")
    topic_decisions: str = setting("fraud-decisions", "Output topic of decisions")
    topic_labels: str = setting("fraud-labels", "Topic of confirmed fraud labels")
    topic_dlq: str = setting("transactions.dlq", "Dead-letter topic for rejected messages")
    topic_shadow: str = setting("fraud-decisions.shadow", "Topic of the challenger's shadow "
                                "decisions (they never decide anything)")
    group_id: str = setting("fraudstream-workers", "Consumer group of the workers")
    model_dir: str = setting("model-registry", "Model registry directory (champion is "
                             "scored); shared storage every worker reads")
    model_poll_s: float = setting(1.0, "Seconds between checks of the registry's champion and "
                                  "challenger pointers (a promotion is picked up live)")
    shadow_max_share: float = setting(0.25, "Most time the challenger may take, as a share of "
                                      "the champion's in-worker time (over: batches skipped)")
    budget_ms: float = setting(1.0, "In-worker latency budget per event, p99, milliseconds")
    max_batch: int = setting(500, "Most events in one batch (the budget may keep it smaller)")
    min_batch: int = setting(8, "Fewest events a full batch is cut down to by the budget")
    max_wait_ms: int = setting(20, "Longest wait for the next event when none is waiting, "
                               "milliseconds (a batch never waits to fill)")
    fetch_wait_ms: int = setting(5, "Longest the broker may hold a fetch for new data "
                                 "(fetch.wait.max.ms), milliseconds")
    commit_interval_s: float = setting(1.0, "Seconds between periodic offset commits")
    auto_offset_reset: str = setting("earliest", "Where a partition without a usable "
                                     "committed offset starts: earliest, latest, or error "
                                     "(stop it and say so); every reset is logged and "
                                     "counted")
    exactly_once: bool = setting(False, "One transactional producer per worker: outputs and "
                                 "input offsets commit together (read_committed readers)")
    transaction_interval_ms: int = setting(100, "With exactly_once: longest a transaction "
                                           "stays open before it commits, milliseconds (0: "
                                           "one per batch); readers see decisions only then")
    transaction_timeout_ms: int = setting(10_000, "With exactly_once: the broker aborts a "
                                          "transaction left open this long (a dead "
                                          "worker's), milliseconds")
    transactional_id: str | None = setting(None, "With exactly_once: this worker's "
                                           "transactional.id (default: group.host.pid); "
                                           "--processes adds .N per replica")
    max_event_bytes: int = setting(16_384, "Events larger than this go to the DLQ")
    max_json_depth: int = setting(32, "Events nested deeper than this (objects and arrays, "
                                  "ignored fields included) go to the DLQ")
    producer_max_message_bytes: int = setting(1_000_000, "Largest record the producer "
                                              "sends (message.max.bytes); dead letters "
                                              "are cut to fit it and the topic's limit")
    max_event_age_days: float = setting(90.0, "Events older than this (event time) go to the DLQ")
    max_event_lead_s: float = setting(3600.0, "Events further ahead of the clock go to the DLQ")
    feature_ttl_days: int = setting(40, "TTL of feature state; longer than the longest window")
    redis_prefix: str = setting("fs", "Prefix of every Redis key the feature store writes")
    redis_timeout_ms: int = setting(50, "Longest wait for a Redis reply before the batch is "
                                    "scored on default features, milliseconds")
    breaker_failures: int = setting(3, "Consecutive feature store failures that open the "
                                    "circuit breaker (Redis is then not called)")
    breaker_reset_s: float = setting(1.0, "Seconds an open breaker waits before one probe")
    state_backlog_max_events: int = setting(100_000, "Events and labels that may wait, in "
                                            "order, for a feature store that is down; "
                                            "beyond, consumption pauses (nothing dropped)")
    state_epoch_check_s: float = setting(5.0, "Seconds between checks of the feature "
                                         "state's epoch (Redis data loss is found within "
                                         "this, or at once after a failed call) and of "
                                         "the transactions topic's identity")
    session_timeout_ms: int = setting(10_000, "Consumer group session timeout")
    heartbeat_interval_ms: int = setting(1_000, "Consumer group heartbeat interval")
    max_poll_interval_ms: int = setting(60_000, "Longest gap between polls before leaving")
    shutdown_timeout_s: float = setting(10.0, "Longest time a clean shutdown may take")
    producer_queue_messages: int = setting(200_000, "Outputs the producer may hold before "
                                           "produce waits (queue.buffering.max.messages)")
    broker_timeout_s: float = setting(60.0, "A worker that hears from no broker for this "
                                      "long exits non-zero (exit code 4)")
    drift_window: int = setting(20_000, "Recent events the drift PSI is computed over")
    emit_features: bool = setting(False, "Include the scored feature vector in each decision")
    metrics_port: int = setting(0, "Port of the Prometheus /metrics endpoint; 0 disables it")
    status_file: str | None = setting(None, "Path of the worker's JSON status heartbeat file")
    log_format: str = setting("text", "Log format: text or json")
    log_level: str = setting("info", "Log level: debug, info, warning, error")

    # -- security: Kafka SASL/TLS and Redis credentials/TLS (stream/kafka_config.py and
    # fraudstream/security.py turn them into each client's options) --------------------
    kafka_security_protocol: str = setting("PLAINTEXT", "Kafka security.protocol: PLAINTEXT, "
                                           "SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str | None = setting(None, "Kafka SASL mechanism: PLAIN, "
                                               "SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
    kafka_sasl_username: str | None = setting(None, "Kafka SASL user (PLAIN, SCRAM)")
    kafka_sasl_password: Secret | None = setting(None, "Kafka SASL password (PLAIN, SCRAM)")
    kafka_ssl_ca_location: str | None = setting(None, "CA bundle that signs the brokers' "
                                                "certificates (default: the system's)")
    kafka_ssl_certificate_location: str | None = setting(None, "Client certificate for "
                                                         "mutual TLS (PEM)")
    kafka_ssl_key_location: str | None = setting(None, "Client private key for mutual TLS "
                                                 "(PEM)")
    kafka_ssl_key_password: Secret | None = setting(None, "Password of the client key")
    kafka_oauth_token_endpoint: str | None = setting(None, "OAUTHBEARER: the OIDC token "
                                                     "endpoint (client credentials grant)")
    kafka_oauth_client_id: str | None = setting(None, "OAUTHBEARER: the OIDC client id")
    kafka_oauth_client_secret: Secret | None = setting(None, "OAUTHBEARER: the OIDC client "
                                                       "secret")
    kafka_oauth_scope: str | None = setting(None, "OAUTHBEARER: scope(s) to ask for")
    redis_username: str | None = setting(None, "Redis ACL user (or user: in the URL)")
    redis_password: Secret | None = setting(None, "Redis password (or :password@ in the URL)")
    redis_tls_ca_file: str | None = setting(None, "CA that signs the Redis server "
                                            "certificate (rediss:// only)")
    redis_tls_cert_file: str | None = setting(None, "Client certificate for Redis mutual "
                                              "TLS (rediss:// only)")
    redis_tls_key_file: str | None = setting(None, "Client key for Redis mutual TLS")

    # -- HTTP scorer (`fraudstream serve`, stream/http) -----------------------------
    http_host: str = setting("0.0.0.0", "Address `fraudstream serve` listens on")
    http_port: int = setting(8080, "Port of `fraudstream serve`; AIP_HTTP_PORT (Vertex AI) "
                             "or SAGEMAKER_BIND_TO_PORT win when the platform sets them")
    http_workers: int = setting(1, "Server processes of `fraudstream serve`")
    api_auth: str = setting("keys", "keys: every scoring route needs an API key; platform: "
                            "none does, the hosting platform authenticates its callers")
    api_keys_file: str | None = setting(None, "File of API key hashes, one "
                                        "name:sha256hex[:revoked] per line (re-read when "
                                        "it changes)")
    api_rate: float = setting(1000.0, "Transactions per second one API key may score "
                              "(token bucket in Redis, shared by every server process)")
    api_burst: int = setting(2000, "Token bucket size: transactions a key may score at "
                             "once after a quiet spell")
    api_max_body_bytes: int = setting(1_048_576, "Largest request body, bytes (413 beyond)")
    api_max_batch: int = setting(500, "Most transactions in one scoring request (422 beyond)")

    # -- trust: signed models (models/signing.py, fraudstream/model_trust.py) and the HTTP
    # scorer's exposure (stream/http) -------------------------------------------------
    model_public_keys: str | None = setting(None, "Trusted Ed25519 public keys, PEM files, "
                                            "comma-separated (several during a rotation): "
                                            "only models whose signed manifest verifies load")
    model_signing_key: str | None = setting(None, "Ed25519 private key (PEM) that train and "
                                            "`models sign` sign with; keep it off the registry")
    dev_keys: bool = setting(False, "Development only (demo, tests): without public keys, "
                             "sign and verify with a key pair generated in dev_keys_dir")
    dev_keys_dir: str = setting("~/.local/state/fraudstream/dev-keys", "Where dev_keys keeps "
                                "its generated key pair")
    api_max_connections_per_key: int = setting(64, "Most requests one API key may have in "
                                               "flight at once, across every process (429)")
    api_body_timeout_s: float = setting(10.0, "Longest a client may take to send a request "
                                        "body, seconds (408 beyond, connection closed)")
    api_metrics_token: Secret | None = setting(None, "Bearer token /metrics asks for on the "
                                               "API port (unset: /metrics only on "
                                               "api_metrics_port)")
    api_metrics_port: int = setting(0, "Port of a separate /metrics listener of `serve` "
                                    "(loopback by default); 0: none")
    api_metrics_host: str = setting("127.0.0.1", "Address the /metrics listener binds")
    api_docs: bool = setting(False, "Serve /docs and /openapi.json (off in production)")
    oidc_allow_http: bool = setting(False, "Accept an http:// OIDC token endpoint (local "
                                    "tests only; https otherwise)")

    def __post_init__(self) -> None:
        self._normalise()
        checks = [
            (self.budget_ms > 0, "budget_ms must be > 0"),
            (self.redis_timeout_ms >= 1, "redis_timeout_ms must be >= 1"),
            (self.breaker_failures >= 1, "breaker_failures must be >= 1"),
            (self.breaker_reset_s > 0, "breaker_reset_s must be > 0"),
            (self.state_backlog_max_events >= 1, "state_backlog_max_events must be >= 1"),
            (self.max_batch >= 1, "max_batch must be >= 1"),
            (self.min_batch >= 1, "min_batch must be >= 1"),
            (self.max_wait_ms >= 0, "max_wait_ms must be >= 0"),
            (self.fetch_wait_ms >= 1, "fetch_wait_ms must be >= 1"),
            (self.commit_interval_s > 0, "commit_interval_s must be > 0"),
            (self.auto_offset_reset in ("earliest", "latest", "error"),
             "auto_offset_reset must be earliest, latest or error"),
            (self.model_poll_s > 0, "model_poll_s must be > 0"),
            (self.shadow_max_share > 0, "shadow_max_share must be > 0"),
            (self.transaction_interval_ms >= 0, "transaction_interval_ms must be >= 0"),
            (self.transaction_timeout_ms > self.transaction_interval_ms,
             "transaction_timeout_ms must exceed transaction_interval_ms"),
            (self.broker_timeout_s > 0, "broker_timeout_s must be > 0"),
            (self.producer_queue_messages >= 1, "producer_queue_messages must be >= 1"),
            (self.drift_window >= 500, "drift_window must be >= 500"),
            (self.max_event_bytes >= 64, "max_event_bytes must be >= 64"),
            (self.max_json_depth >= 1, "max_json_depth must be >= 1"),
            (self.producer_max_message_bytes >= 16_384,
             "producer_max_message_bytes must be >= 16384"),
            (self.feature_ttl_days > TERMINAL_RING_DAYS,
             f"feature_ttl_days must exceed the {TERMINAL_RING_DAYS}-day terminal ring"),
            (self.max_event_age_days > 0, "max_event_age_days must be > 0"),
            (self.max_event_lead_s >= 0, "max_event_lead_s must be >= 0"),
            (0 <= self.metrics_port <= 65535, "metrics_port must be in 0..65535"),
            (self.log_format in ("text", "json"), "log_format must be text or json"),
            (self.log_level in ("debug", "info", "warning", "error"), "log_level is unknown"),
            (1 <= self.http_port <= 65535, "http_port must be in 1..65535"),
            (self.http_workers >= 1, "http_workers must be >= 1"),
            (self.api_auth in ("keys", "platform"), "api_auth must be keys or platform"),
            (self.api_rate > 0, "api_rate must be > 0"),
            (self.api_max_batch >= 1, "api_max_batch must be >= 1"),
            (self.api_burst >= self.api_max_batch,
             "api_burst must be >= api_max_batch (a full batch could never pass)"),
            (self.api_max_body_bytes >= 1024, "api_max_body_bytes must be >= 1024"),
            (self.api_max_connections_per_key >= 1, "api_max_connections_per_key must be >= 1"),
            (self.api_body_timeout_s > 0, "api_body_timeout_s must be > 0"),
            (0 <= self.api_metrics_port <= 65535, "api_metrics_port must be in 0..65535"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        security.validate(self)

    def _normalise(self) -> None:
        """Secrets given as plain strings become Secret; protocol names are upper case."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (str(f.type).startswith("Secret") and isinstance(value, str)
                    and not isinstance(value, Secret)):
                object.__setattr__(self, f.name, Secret(value))
        object.__setattr__(self, "kafka_security_protocol",
                           self.kafka_security_protocol.strip().upper())
        if self.kafka_sasl_mechanism is not None:
            object.__setattr__(self, "kafka_sasl_mechanism",
                               self.kafka_sasl_mechanism.strip().upper())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``FRAUDSTREAM_<NAME>``; explicit overrides win. A secret
        may come from the file ``FRAUDSTREAM_<NAME>_FILE`` names instead (compose and
        Kubernetes secrets), read once here."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if (raw is None or raw == "") and str(f.type).startswith("Secret"):
                raw = _read_secret_file(environ.get(PREFIX + f.name.upper() + "_FILE"))
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["redis_url"] = redact_url(self.redis_url)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def child_environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment that hands these settings to a child process: ``base`` (this
        process's environment) without its own FRAUDSTREAM_ variables, plus every set one."""
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith(PREFIX)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[PREFIX + f.name.upper()] = (value.reveal() if isinstance(value, Secret)
                                                else str(value))
        return env

    def secrets(self) -> list[str]:
        """Every secret value these settings hold: Secret fields and URL passwords."""
        found = [v.reveal() for f in dataclasses.fields(self)
                 if isinstance(v := getattr(self, f.name), Secret)]
        if self.redis_url and "@" in self.redis_url:
            password = urlsplit(self.redis_url).password
            if password:
                found.append(password)
        return found

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def describe() -> list[tuple[str, str, str]]:
        """(environment variable, default, doc) for every setting."""
        return [
            (PREFIX + f.name.upper(), repr(f.default), f.metadata.get("doc", ""))
            for f in dataclasses.fields(Settings)
        ]


def _read_secret_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path) as handle:
            return handle.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: "
                          f"{exc.strerror or exc}") from None


def _parse(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if kind.startswith("bool"):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("Secret"):
            return Secret(raw)
    except ValueError:
        raise ConfigError(
            f"{PREFIX}{name.upper()}={raw!r} is not a valid {kind.split()[0]}"
        ) from None
    return raw
