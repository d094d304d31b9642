"""librdkafka's global errors, kept so that a failure can say why it happened.

A broker that refuses the credentials (SASL) or a TLS handshake that fails (an untrusted
or mismatched certificate) never heals by retrying; librdkafka retries anyway and an
operation then fails with a bare "broker transport failure". ``ClientErrors`` is an
``error_cb`` that remembers the refusal, so the command can end with the real reason.
librdkafka's messages carry the mechanism and user, never the password.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from fraudstream.errors import CredentialsError

REFUSALS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
            KafkaError._SSL}


def is_refusal(error: KafkaError) -> bool:
    """True for an error that retrying with the same settings cannot fix."""
    return error.code() in REFUSALS


def refusal_message(error: KafkaError) -> str:
    return (f"Kafka authentication or TLS failed: {error.str()} (check "
            f"FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL and the FRAUDSTREAM_KAFKA_SASL_* / "
            f"FRAUDSTREAM_KAFKA_SSL_* settings)")


class ClientErrors:
    """An ``error_cb`` that keeps the last refusal (and the last error of any kind)."""

    def __init__(self) -> None:
        self.refusal: KafkaError | None = None
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        self.last = error
        if is_refusal(error):
            self.refusal = error

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise CredentialsError(refusal_message(self.refusal))

    def explain(self, fallback: str) -> str:
        """The refusal's message if there was one, else ``fallback``."""
        return refusal_message(self.refusal) if self.refusal is not None else fallback
