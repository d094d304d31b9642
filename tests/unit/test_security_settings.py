"""The security settings: parsed from FRAUDSTREAM_ variables, secrets kept secret, and
every combination that cannot work refused in one line that names the variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.errors import ConfigError
from fraudstream.security import redis_auth
from fraudstream.settings import Secret, Settings

PASSWORD = "sasl-pass-7f3a9c"
CLIENT_SECRET = "oidc-secret-51be2d"
REDIS_PASSWORD = "redis-pass-c0ffee"


def scram(**extra: object) -> Settings:
    return Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                    kafka_sasl_username="fraud", kafka_sasl_password=PASSWORD, **extra)


def oauth(**extra: object) -> Settings:
    return Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                    kafka_oauth_token_endpoint="https://idp.example/oauth2/token",
                    kafka_oauth_client_id="fraudstream", kafka_oauth_client_secret=CLIENT_SECRET,
                    **extra)


def test_every_name_is_read_from_its_variable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": "fraud",
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
        "FRAUDSTREAM_KAFKA_SSL_CA_LOCATION": str(ca),
        "FRAUDSTREAM_REDIS_URL": "rediss://redis.internal:6380/0",
        "FRAUDSTREAM_REDIS_USERNAME": "worker",
        "FRAUDSTREAM_REDIS_PASSWORD": REDIS_PASSWORD,
        "FRAUDSTREAM_REDIS_TLS_CA_FILE": str(ca),
    }
    settings = Settings.from_env(env)
    assert settings.kafka_security_protocol == "SASL_SSL"  # normalised to librdkafka's case
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert isinstance(settings.kafka_sasl_password, Secret)
    assert isinstance(settings.redis_password, Secret)
    assert settings.kafka_sasl_password.reveal() == PASSWORD
    assert settings.kafka_ssl_ca_location == str(ca)
    assert settings.redis_tls_ca_file == str(ca)


def test_oauth_names_are_read_too() -> None:
    settings = Settings.from_env({
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "FRAUDSTREAM_KAFKA_OAUTH_TOKEN_ENDPOINT": "https://idp.example/token",
        "FRAUDSTREAM_KAFKA_OAUTH_CLIENT_ID": "fraudstream",
        "FRAUDSTREAM_KAFKA_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "FRAUDSTREAM_KAFKA_OAUTH_SCOPE": "kafka.read kafka.write"})
    assert isinstance(settings.kafka_oauth_client_secret, Secret)
    assert settings.kafka_oauth_scope == "kafka.read kafka.write"


def test_secrets_never_print_but_reach_the_scrubber_and_children(tmp_path: Path) -> None:
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    key.write_text("k")
    cert.write_text("c")
    settings = oauth(redis_url="redis://worker:url-pass-9d8e7f@redis:6379/0")
    text = repr(settings) + str(settings)
    for value in (CLIENT_SECRET, "url-pass-9d8e7f"):
        assert value not in text
    assert set(settings.secrets()) == {CLIENT_SECRET, "url-pass-9d8e7f"}
    scrammed = scram(redis_password=REDIS_PASSWORD, kafka_ssl_key_password="key-pass-1234",
                     kafka_ssl_key_location=str(key), kafka_ssl_certificate_location=str(cert))
    assert set(scrammed.secrets()) == {PASSWORD, REDIS_PASSWORD, "key-pass-1234"}
    env = scrammed.child_environ({})
    assert env["FRAUDSTREAM_KAFKA_SASL_PASSWORD"] == PASSWORD  # the child needs the value
    assert Settings.from_env(env) == scrammed


def test_redis_auth_carries_the_credentials_and_hides_the_password(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = Settings(redis_url="rediss://redis:6380/0", redis_username="worker",
                        redis_password=REDIS_PASSWORD, redis_tls_ca_file=str(ca))
    auth = redis_auth(settings)
    assert auth.client_kwargs() == {"username": "worker", "password": REDIS_PASSWORD,
                                    "ssl_ca_certs": str(ca)}
    assert REDIS_PASSWORD not in repr(auth)
    assert redis_auth(Settings()).client_kwargs() == {}


BAD = [
    ({"kafka_security_protocol": "TLS"}, "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL='TLS' is unknown"),
    ({"kafka_security_protocol": "SASL_SSL"}, "needs FRAUDSTREAM_KAFKA_SASL_MECHANISM"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"},
     "FRAUDSTREAM_KAFKA_SASL_MECHANISM='GSSAPI' is unknown"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN",
      "kafka_sasl_username": "u"}, "PLAIN needs FRAUDSTREAM_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256",
      "kafka_sasl_password": PASSWORD}, "needs FRAUDSTREAM_KAFKA_SASL_USERNAME"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER",
      "kafka_oauth_client_id": "c", "kafka_oauth_client_secret": CLIENT_SECRET},
     "OAUTHBEARER needs FRAUDSTREAM_KAFKA_OAUTH_TOKEN_ENDPOINT"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER",
      "kafka_oauth_token_endpoint": "https://idp/token", "kafka_oauth_client_secret":
      CLIENT_SECRET}, "OAUTHBEARER needs FRAUDSTREAM_KAFKA_OAUTH_CLIENT_ID"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER",
      "kafka_oauth_token_endpoint": "idp/token", "kafka_oauth_client_id": "c",
      "kafka_oauth_client_secret": CLIENT_SECRET}, "must be an https:// URL"),
    ({"kafka_sasl_mechanism": "PLAIN"}, "does not use SASL"),
    ({"kafka_sasl_password": PASSWORD}, "FRAUDSTREAM_KAFKA_SASL_PASSWORD is set but"),
    ({"kafka_ssl_ca_location": "/etc/ssl/certs/ca-certificates.crt"}, "does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_location": "/no/such/ca.pem"},
     "FRAUDSTREAM_KAFKA_SSL_CA_LOCATION=/no/such/ca.pem: no such readable file"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_key_location": "/k.pem"},
     "mutual TLS needs both"),
    ({"redis_url": "http://redis:6379"}, "must start with redis:// or rediss://"),
    ({"redis_url": "redis://redis:6379/0", "redis_tls_ca_file": "/ca.pem"},
     "is not rediss:// (TLS)"),
    ({"redis_url": "redis://:one-pass-111@redis:6379/0", "redis_password": REDIS_PASSWORD},
     "set one of them"),
    ({"redis_url": "rediss://redis:6379/0", "redis_tls_cert_file": "/c.pem"},
     "Redis mutual TLS needs both"),
    ({"redis_url": "rediss://redis:6379/0", "redis_tls_ca_file": "/no/such/redis-ca.pem"},
     "FRAUDSTREAM_REDIS_TLS_CA_FILE=/no/such/redis-ca.pem: no such readable file"),
    ({"redis_username": "worker"}, "FRAUDSTREAM_REDIS_USERNAME needs a password"),
]


@pytest.mark.parametrize(("values", "expected"), BAD, ids=[e for _, e in BAD])
def test_a_combination_that_cannot_work_is_one_readable_line(
        values: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(**values)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    for secret in (PASSWORD, CLIENT_SECRET, REDIS_PASSWORD, "one-pass-111"):
        assert secret not in message


def test_the_same_checks_run_on_the_environment() -> None:
    with pytest.raises(ConfigError, match="needs FRAUDSTREAM_KAFKA_SASL_MECHANISM"):
        Settings.from_env({"FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


def test_valid_combinations_pass(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    cert = tmp_path / "client.pem"
    key.write_text("k")
    cert.write_text("c")
    scram()
    oauth(kafka_oauth_scope="kafka")
    Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location=str(tmp_path),
             kafka_ssl_certificate_location=str(cert), kafka_ssl_key_location=str(key),
             kafka_ssl_key_password="key-pass-1234")
    Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
             kafka_sasl_username="u", kafka_sasl_password=PASSWORD)
    Settings(redis_url="rediss://redis:6380/0", redis_tls_cert_file=str(cert),
             redis_tls_key_file=str(key), redis_username="worker",
             redis_password=REDIS_PASSWORD)
    Settings(redis_url="redis://worker:url-pass-9d8e7f@redis:6379/0")
