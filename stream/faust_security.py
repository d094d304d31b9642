"""The Kafka security settings in the form Faust (aiokafka underneath) takes them.

aiokafka has no librdkafka dict: TLS is an ``ssl.SSLContext`` (the CA bundle, and the
client certificate for mutual TLS), SASL PLAIN/SCRAM are username and password, and
OAUTHBEARER needs a token provider, here an OIDC client-credentials one against the same
token endpoint librdkafka would use.
"""

from __future__ import annotations

import asyncio
import os
import ssl

from aiokafka.abc import AbstractTokenProvider
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from fraudstream.security import uses_sasl, uses_tls
from fraudstream.settings import Settings
from fraudstream.stream.oidc import CachedToken, ClientCredentials, request_token


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers' certificates and host names (against the configured CA, or
    the system's), and presents the client certificate when one is configured."""
    ca = settings.kafka_ssl_ca_location
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=ca if ca and ca != "probe" and not os.path.isdir(ca) else None,
        capath=ca if ca and os.path.isdir(ca) else None)
    if settings.kafka_ssl_certificate_location and settings.kafka_ssl_key_location:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(settings.kafka_ssl_certificate_location,
                                settings.kafka_ssl_key_location,
                                password.reveal() if password is not None else None)
    return context


# aiokafka ships no type information, so its base class is Any here; aiokafka insists on
# an instance of it (isinstance) for OAUTHBEARER, so the subclass must stay.
class OidcTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka: no types
    """aiokafka's OAUTHBEARER token source: client credentials, cached until near expiry."""

    def __init__(self, credentials: ClientCredentials) -> None:
        self.credentials = credentials
        self._cached = CachedToken(lambda: request_token(credentials))

    async def token(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self._cached.get)


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings) if uses_tls(protocol) else None
    if not uses_sasl(protocol):
        return SSLCredentials(context) if context is not None else None
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        secret = settings.kafka_oauth_client_secret
        return OAuthCredentials(oauth_cb=OidcTokenProvider(ClientCredentials(
            token_endpoint=settings.kafka_oauth_token_endpoint or "",
            client_id=settings.kafka_oauth_client_id or "",
            client_secret=secret.reveal() if secret is not None else "",
            scope=settings.kafka_oauth_scope, allow_http=settings.oidc_allow_http)),
            ssl_context=context)
    password = settings.kafka_sasl_password
    return SASLCredentials(username=settings.kafka_sasl_username,
                           password=password.reveal() if password is not None else None,
                           ssl_context=context, mechanism=settings.kafka_sasl_mechanism)

