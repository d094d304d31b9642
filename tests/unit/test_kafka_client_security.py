"""Every Kafka client the project creates gets the security settings: the librdkafka
dicts of the worker, labels reader, lag observer, admin/topics, simulator, monitor, demo
console and bench peers, the Quix Streams peer's connection, and Faust's aiokafka
credentials. librdkafka itself checks the dicts: a client is created from each (no
broker is contacted before it is used), and a broken one is refused."""

from __future__ import annotations

import ast
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from fraudstream.settings import Settings
from fraudstream.stream.faust_security import OidcTokenProvider, faust_credentials
from fraudstream.stream.kafka_config import (
    admin_config,
    connection_config,
    consumer_config,
    downstream_consumer_config,
    producer_config,
    security_config,
    transactional_producer_config,
)
from fraudstream.stream.labels_reader import labels_group
from fraudstream.stream.lag import observer_config
from tests.certificates import make_ca

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "sasl-pass-7f3a9c"
CLIENT_SECRET = "oidc-secret-51be2d"
KEY_PASSWORD = "key-pass-4d2c"
NOWHERE = "127.0.0.1:9"  # discard port: nothing answers, nothing is sent

# Every config builder a client of the project is created from (see the guard below).
BUILDERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "worker consumer": consumer_config,
    "worker producer": producer_config,
    "exactly-once producer": lambda s: transactional_producer_config(s, "txn-1"),
    "labels reader": lambda s: consumer_config(s, labels_group(s)),
    "lag observer": lambda s: observer_config(s, s.group_id),
    "admin (topics, partition counts)": admin_config,
    "monitor, demo console, bench reader": lambda s: downstream_consumer_config(s, "g"),
    "quix streams peer": connection_config,
}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    ca = make_ca(directory)
    client = ca.issue(directory, "fraudstream-client", client=True,
                      key_password=KEY_PASSWORD.encode())
    return {"ca": str(ca.cert), "cert": str(client.cert), "key": str(client.key)}


def scram_ssl(files: dict[str, str]) -> Settings:
    return Settings(kafka_bootstrap=NOWHERE, kafka_security_protocol="SASL_SSL",
                    kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="fraud",
                    kafka_sasl_password=PASSWORD, kafka_ssl_ca_location=files["ca"],
                    kafka_ssl_certificate_location=files["cert"],
                    kafka_ssl_key_location=files["key"], kafka_ssl_key_password=KEY_PASSWORD)


def oauth(files: dict[str, str], protocol: str = "SASL_SSL") -> Settings:
    tls = {"kafka_ssl_ca_location": files["ca"]} if protocol == "SASL_SSL" else {}
    return Settings(kafka_bootstrap=NOWHERE, kafka_security_protocol=protocol,
                    kafka_sasl_mechanism="OAUTHBEARER",
                    kafka_oauth_token_endpoint="https://127.0.0.1:9/oauth2/token",
                    kafka_oauth_client_id="fraudstream", kafka_oauth_client_secret=CLIENT_SECRET,
                    kafka_oauth_scope="kafka", **tls)


def every_variant(files: dict[str, str]) -> dict[str, Settings]:
    return {
        "PLAINTEXT": Settings(kafka_bootstrap=NOWHERE),
        "SSL": Settings(kafka_bootstrap=NOWHERE, kafka_security_protocol="SSL",
                        kafka_ssl_ca_location=files["ca"]),
        "SASL_PLAINTEXT PLAIN": Settings(
            kafka_bootstrap=NOWHERE, kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN", kafka_sasl_username="fraud",
            kafka_sasl_password=PASSWORD),
        "SASL_SSL SCRAM-SHA-256": Settings(
            kafka_bootstrap=NOWHERE, kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username="fraud",
            kafka_sasl_password=PASSWORD),
        "SASL_SSL SCRAM-SHA-512 mTLS": scram_ssl(files),
        "SASL_SSL OAUTHBEARER": oauth(files),
        "SASL_PLAINTEXT OAUTHBEARER": oauth(files, "SASL_PLAINTEXT"),
    }


def test_security_config_of_scram_over_tls(tls_files: dict[str, str]) -> None:
    assert security_config(scram_ssl(tls_files)) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fraud", "sasl.password": PASSWORD,
        "ssl.ca.location": tls_files["ca"], "ssl.certificate.location": tls_files["cert"],
        "ssl.key.location": tls_files["key"], "ssl.key.password": KEY_PASSWORD}


def test_oauthbearer_uses_librdkafkas_builtin_oidc(tls_files: dict[str, str]) -> None:
    config = security_config(oauth(tls_files))
    assert config == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": "https://127.0.0.1:9/oauth2/token",
        "sasl.oauthbearer.client.id": "fraudstream",
        "sasl.oauthbearer.client.secret": CLIENT_SECRET,
        "sasl.oauthbearer.scope": "kafka", "ssl.ca.location": tls_files["ca"]}
    assert "sasl.password" not in config and "sasl.username" not in config


def test_plaintext_adds_nothing_but_the_protocol() -> None:
    assert security_config(Settings()) == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize("client", list(BUILDERS))
def test_every_client_config_carries_the_security_settings(
        client: str, tls_files: dict[str, str]) -> None:
    for variant, settings in every_variant(tls_files).items():
        config = BUILDERS[client](settings)
        expected = security_config(settings)
        assert {k: config.get(k) for k in expected} == expected, (client, variant)
        assert config["bootstrap.servers"] == NOWHERE


@pytest.mark.parametrize("variant", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT PLAIN",
                                     "SASL_SSL SCRAM-SHA-256", "SASL_SSL SCRAM-SHA-512 mTLS",
                                     "SASL_SSL OAUTHBEARER", "SASL_PLAINTEXT OAUTHBEARER"])
def test_librdkafka_accepts_every_config(variant: str, tls_files: dict[str, str]) -> None:
    """Creating a client validates every key and value (an unknown key, a bad mechanism,
    an unreadable CA or key, OIDC without its client settings all raise here)."""
    settings = every_variant(tls_files)[variant]
    quiet = {"log_level": 0}
    producer = Producer({**producer_config(settings), **quiet})
    consumer = Consumer({**consumer_config(settings), **quiet})
    admin = AdminClient({**admin_config(settings), **quiet})
    consumer.close()
    del producer, admin


@pytest.mark.parametrize(("change", "complaint"), [
    ({"sasl.mechanism": "PLAINTEXT-PLEASE"}, "Unsupported SASL mechanism"),
    ({"sasl.oauthbearer.client.secret": None}, "`sasl.oauthbearer.client.secret` is mandatory"),
    ({"sasl.oauthbearer.token.endpoint.url": None},
     "`sasl.oauthbearer.token.endpoint.url` is mandatory"),
    ({"sasl.oauthbearer.method": "none"}, 'for configuration property "sasl.oauthbearer.method"'),
])
def test_librdkafka_refuses_a_broken_oauth_config(
        change: dict[str, Any], complaint: str, tls_files: dict[str, str]) -> None:
    config = {**producer_config(oauth(tls_files)), "log_level": 0}
    for key, value in change.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    with pytest.raises(KafkaException, match=re.escape(complaint)):
        Producer(config)


def test_librdkafka_refuses_a_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    settings = Settings(kafka_bootstrap=NOWHERE, kafka_security_protocol="SSL",
                        kafka_ssl_ca_location=str(bogus))
    with pytest.raises(KafkaException, match=re.escape("ssl.ca.location")):
        Producer({**producer_config(settings), "log_level": 0})


def test_faust_gets_scram_over_tls_with_the_ca_and_client_certificate(
        tls_files: dict[str, str]) -> None:
    auth = credentials_to_aiokafka_auth(faust_credentials(scram_ssl(tls_files)))
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "fraud"
    assert auth["sasl_plain_password"] == PASSWORD
    context: ssl.SSLContext = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == [
        "fraudstream-test-ca"]


def test_faust_gets_tls_alone_and_nothing_for_plaintext(tls_files: dict[str, str]) -> None:
    tls = Settings(kafka_bootstrap=NOWHERE, kafka_security_protocol="SSL",
                   kafka_ssl_ca_location=tls_files["ca"])
    auth = credentials_to_aiokafka_auth(faust_credentials(tls))
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].get_ca_certs()
    assert faust_credentials(Settings(kafka_bootstrap=NOWHERE)) is None
    plain = every_variant(tls_files)["SASL_PLAINTEXT PLAIN"]
    auth = credentials_to_aiokafka_auth(faust_credentials(plain))
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert auth["ssl_context"] is None


def test_faust_gets_an_oidc_token_provider(tls_files: dict[str, str]) -> None:
    auth = credentials_to_aiokafka_auth(faust_credentials(oauth(tls_files)))
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    provider = auth["sasl_oauth_token_provider"]
    assert isinstance(provider, OidcTokenProvider)
    assert provider.credentials.token_endpoint == "https://127.0.0.1:9/oauth2/token"
    assert provider.credentials.client_id == "fraudstream"
    assert provider.credentials.client_secret == CLIENT_SECRET
    assert provider.credentials.scope == "kafka"
    assert CLIENT_SECRET not in repr(provider.credentials)


def test_the_quix_peer_gets_the_settings_through_its_environment(
        tls_files: dict[str, str]) -> None:
    settings = scram_ssl(tls_files)
    env = settings.child_environ({})
    assert env["FRAUDSTREAM_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert connection_config(Settings.from_env(env)) == connection_config(settings)


# -- the guard: no client of the project is created from a dict of its own ------------

CLIENT_CLASSES = {"Consumer", "Producer", "AdminClient"}
BUILDER_NAMES = {"consumer_config", "producer_config", "transactional_producer_config",
                 "downstream_consumer_config", "admin_config", "observer_config",
                 "common_config", "connection_config"}
# Probing the embedded broker the project itself started (plaintext, loopback).
EXEMPT = {("fraudstream/services.py", "kafka_answers")}


def _client_calls(path: Path) -> list[tuple[str, ast.Call, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for function in [n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
        for node in ast.walk(function):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in CLIENT_CLASSES and node.args):
                found.append((function.name, node, ast.unparse(function)))
    return found


def test_every_kafka_client_is_built_from_kafka_config() -> None:
    checked = 0
    for folder in ("fraudstream", "stream", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            for function, call, body in _client_calls(path):
                if (relative, function) in EXEMPT:
                    continue
                argument = ast.unparse(call.args[0])
                if isinstance(call.args[0], ast.Name):  # config = builder(...) first
                    match = re.search(rf"\b{argument} = (\w+)\(", body)
                    argument = match.group(1) if match else argument
                assert any(name in argument for name in BUILDER_NAMES), (
                    f"{relative}:{call.lineno} {function}() creates a Kafka client from "
                    f"{argument}, not from stream/kafka_config.py")
                checked += 1
    assert checked >= 12  # worker, labels, lag, topics, simulator, monitor, console, bench
