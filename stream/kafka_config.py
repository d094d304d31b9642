"""Settings turned into librdkafka configuration dicts, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fraudstream.security import uses_sasl, uses_tls
from fraudstream.settings import Secret, Settings

log = logging.getLogger(__name__)


def librdkafka_logger_name(client: str) -> str:
    """The logger that librdkafka's own log lines of this kind of client go to."""
    return f"fraudstream.kafka.{client}"


def _librdkafka_log(client: str) -> Any:
    """Route librdkafka's own log lines into ours instead of stderr."""
    return logging.getLogger(librdkafka_logger_name(client))


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's security.protocol, SASL and TLS keys for these settings (validated
    as a whole by Settings). OAUTHBEARER uses librdkafka's built-in OIDC client: it asks
    the token endpoint for a token (client credentials grant) and refreshes it itself."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {"security.protocol": protocol}
    mechanism = settings.kafka_sasl_mechanism
    if uses_sasl(protocol) and mechanism is not None:
        config["sasl.mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            config.update({
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.token.endpoint.url": settings.kafka_oauth_token_endpoint,
                "sasl.oauthbearer.client.id": settings.kafka_oauth_client_id,
                "sasl.oauthbearer.client.secret": _revealed(settings.kafka_oauth_client_secret),
            })
            if settings.kafka_oauth_scope:
                config["sasl.oauthbearer.scope"] = settings.kafka_oauth_scope
        else:
            config["sasl.username"] = settings.kafka_sasl_username
            config["sasl.password"] = _revealed(settings.kafka_sasl_password)
    if uses_tls(protocol):
        files = {"ssl.ca.location": settings.kafka_ssl_ca_location,
                 "ssl.certificate.location": settings.kafka_ssl_certificate_location,
                 "ssl.key.location": settings.kafka_ssl_key_location,
                 "ssl.key.password": _revealed(settings.kafka_ssl_key_password)}
        config.update({key: value for key, value in files.items() if value is not None})
    return config


def connection_config(settings: Settings) -> dict[str, Any]:
    """Where the brokers are and how to authenticate: what every client of the project
    needs, and all that the peers given it in their own form (Quix Streams) need."""
    if not settings.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is not set")
    return {"bootstrap.servers": settings.kafka_bootstrap, **security_config(settings)}


def common_config(settings: Settings) -> dict[str, Any]:
    """The base of every librdkafka client the project creates."""
    # Nagle would hold a small request (a fetch, a few decisions) back on the socket.
    return {**connection_config(settings), "client.id": "fraudstream",
            "socket.nagle.disable": True}


def _revealed(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def admin_config(settings: Settings) -> dict[str, Any]:
    return {**common_config(settings), "logger": _librdkafka_log("admin")}


def consumer_config(settings: Settings, group_id: str | None = None) -> dict[str, Any]:
    """Consumer of the worker: manual offset store, commits driven by delivery reports."""
    return {
        **common_config(settings),
        "group.id": group_id or settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": settings.auto_offset_reset,
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        # Some brokers (Tansu) hold every fetch this long even when data is there.
        "fetch.wait.max.ms": settings.fetch_wait_ms,
        # librdkafka prefetches up to 64 MB by default: a backlog then sits in the
        # worker's memory. 16 MB is still some 80,000 events ahead of a 512-event batch.
        "queued.max.messages.kbytes": 16384,
        "logger": _librdkafka_log("consumer"),
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent producer: retries never duplicate or reorder within a partition."""
    return {
        **common_config(settings),
        "client.id": "fraudstream-producer",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "compression.type": "none",
        "queue.buffering.max.messages": settings.producer_queue_messages,
        "message.max.bytes": settings.producer_max_message_bytes,
        "logger": _librdkafka_log("producer"),
    }


def transactional_producer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The exactly-once producer: idempotent, and every output in a transaction."""
    return {
        **producer_config(settings),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_ms,
    }


def downstream_consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """A plain reader of an output topic (tests, demo console, downstream services)."""
    return {
        **common_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "logger": _librdkafka_log("reader"),
    }
