"""Secrets never reach a log line, an error message or /metrics.

A worker process runs with known secret values in use: its Redis is TLS with an ACL
user and password, its broker is TLS (the proxy in front of Tansu, see
tests/integration/test_kafka_security.py) with a client key that only the key password
opens. It logs at debug level and serves /metrics. Then commands fail on bad
credentials: a worker against a Redis that wants another password, ``topics create`` and
``simulate`` whose SCRAM login or OIDC client the broker refuses, a setting that cannot
work. Every failure is explained in one line; no secret value is in any output. Last,
the Faust runtime decides a stream over the same TLS broker and TLS Redis."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests.certificates import CertificateAuthority, make_ca
from tests.conftest import settings_env
from tests.e2e.cli import ROOT, run_cli, worker_process
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent
from tests.secure_kafka import SecureBroker, tls_broker
from tests.secure_redis import SecureRedis, acl_user, start_secure_redis

REDIS_USER, REDIS_PASSWORD = "fraud-worker", "redis-secret-3e8b41f0"
KEY_PASSWORD = "client-key-secret-7a2d95c4"
SASL_PASSWORD = "sasl-secret-c6f1e2a9"
CLIENT_SECRET = "oidc-secret-0b9d4e73"
WRONG_REDIS_PASSWORD = "wrong-redis-secret-5d1c"
SECRETS = (REDIS_PASSWORD, KEY_PASSWORD, SASL_PASSWORD, CLIENT_SECRET, WRONG_REDIS_PASSWORD)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_redis(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[SecureRedis]:
    server = start_secure_redis(ca, ca.issue(tmp_path_factory.mktemp("redis"), "redis"),
                                [acl_user(REDIS_USER, REDIS_PASSWORD)])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def brokers(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[SecureBroker, SecureBroker]]:
    """(TLS only, TLS with SASL required)."""
    directory = tmp_path_factory.mktemp("brokers")
    with tls_broker(ca.issue(directory, "broker")) as tls, \
            tls_broker(ca.issue(directory, "sasl-broker"), authentication=True) as sasl:
        yield tls, sasl


@pytest.fixture(scope="module")
def client_certificate(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory,
                       ) -> tuple[Path, Path]:
    issued = ca.issue(tmp_path_factory.mktemp("client"), "fraudstream", client=True,
                      key_password=KEY_PASSWORD.encode())
    return issued.cert, issued.key


def secure_settings(settings: Settings, secure_redis: SecureRedis, broker: SecureBroker,
                    ca: CertificateAuthority, client: tuple[Path, Path]) -> Settings:
    return settings.replace(
        kafka_bootstrap=broker.bootstrap, kafka_security_protocol="SSL",
        kafka_ssl_ca_location=str(ca.cert), kafka_ssl_certificate_location=str(client[0]),
        kafka_ssl_key_location=str(client[1]), kafka_ssl_key_password=KEY_PASSWORD,
        redis_url=secure_redis.url, redis_username=REDIS_USER, redis_password=REDIS_PASSWORD,
        redis_tls_ca_file=str(secure_redis.ca))


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, f"a secret leaked into:\n{output[-2000:]}"


def assert_one_error_line(stderr: str, expected: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("fraudstream: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert expected in errors[0], errors[0]


def test_a_working_worker_never_shows_its_secrets(
        settings: Settings, tmp_path: Path, secure_redis: SecureRedis,
        brokers: tuple[SecureBroker, SecureBroker], ca: CertificateAuthority,
        client_certificate: tuple[Path, Path]) -> None:
    s = secure_settings(settings, secure_redis, brokers[0], ca, client_certificate)
    make_topics(s, partitions=2)
    port = services.free_port()
    with worker_process(s, tmp_path, "--metrics-port", str(port),
                        env={"FRAUDSTREAM_LOG_FORMAT": "json",
                             "FRAUDSTREAM_LOG_LEVEL": "debug"}) as worker:
        sent = produce_frame(s, simulate(recent(2)))
        assert len(read_topic(s, s.topic_decisions, expect=sent, settle=0.5)) >= sent
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        assert "fraudstream_decisions_total" in metrics
        assert worker.stop() == 0, worker.tail()
    log = worker.log.read_text()
    assert '"worker started"' in log  # it did log, at debug level, as JSON
    assert_no_secret(log, metrics)


def test_a_worker_against_a_redis_with_another_password_says_so_in_one_line(
        settings: Settings, secure_redis: SecureRedis,
        brokers: tuple[SecureBroker, SecureBroker], ca: CertificateAuthority,
        client_certificate: tuple[Path, Path]) -> None:
    s = secure_settings(settings, secure_redis, brokers[0], ca, client_certificate).replace(
        redis_password=WRONG_REDIS_PASSWORD)
    result = run_cli(s, "worker", timeout=60)
    assert result.returncode == 6, result.stderr[-3000:]
    assert_one_error_line(result.stderr, "refused the credentials")
    assert_no_secret(result.stdout, result.stderr)


def test_a_wrong_password_in_the_redis_url_is_redacted(
        settings: Settings, secure_redis: SecureRedis,
        brokers: tuple[SecureBroker, SecureBroker], ca: CertificateAuthority,
        client_certificate: tuple[Path, Path]) -> None:
    url = secure_redis.url.replace("rediss://",
                                   f"rediss://{REDIS_USER}:{WRONG_REDIS_PASSWORD}@")
    s = secure_settings(settings, secure_redis, brokers[0], ca, client_certificate).replace(
        redis_url=url, redis_username=None, redis_password=None)
    result = run_cli(s, "worker", timeout=60)
    assert result.returncode == 6, result.stderr[-3000:]
    assert_one_error_line(result.stderr, f"rediss://{REDIS_USER}:***@127.0.0.1")
    assert_no_secret(result.stdout, result.stderr)


def refused_scram(settings: Settings, broker: SecureBroker, ca: CertificateAuthority,
                  mechanism: str) -> Settings:
    """Settings that log in to ``broker`` (which knows no SCRAM user) over TLS."""
    return settings.replace(kafka_bootstrap=broker.bootstrap,
                            kafka_security_protocol="SASL_SSL",
                            kafka_sasl_mechanism=mechanism, kafka_sasl_username="fraudstream",
                            kafka_sasl_password=SASL_PASSWORD,
                            kafka_ssl_ca_location=str(ca.cert))


def test_topics_create_with_a_refused_scram_login_says_so_in_one_line(
        settings: Settings, brokers: tuple[SecureBroker, SecureBroker],
        ca: CertificateAuthority) -> None:
    s = refused_scram(settings, brokers[1], ca, "SCRAM-SHA-256")
    result = run_cli(s, "--log-level", "debug", "topics", "create", "--partitions", "1",
                     timeout=60)
    assert result.returncode == 6, result.stderr[-3000:]
    assert_one_error_line(result.stderr, "SASL SCRAM authentication failed")
    assert_no_secret(result.stdout, result.stderr)


def test_simulate_with_a_refused_scram_login_stops_in_one_line(
        settings: Settings, brokers: tuple[SecureBroker, SecureBroker],
        ca: CertificateAuthority) -> None:
    s = refused_scram(settings, brokers[1], ca, "SCRAM-SHA-512")
    result = run_cli(s, "simulate", "--rate", "200", "--duration", "30", "--customers", "50",
                     "--terminals", "100", "--days", "3", timeout=60)
    assert result.returncode == 6, result.stderr[-3000:]
    assert_one_error_line(result.stderr, "SASL SCRAM authentication failed")
    assert_no_secret(result.stdout, result.stderr)


def test_topics_create_with_a_refused_oidc_client_says_so_in_one_line(
        settings: Settings, brokers: tuple[SecureBroker, SecureBroker],
        ca: CertificateAuthority) -> None:
    s = settings.replace(kafka_bootstrap=brokers[1].bootstrap,
                         kafka_security_protocol="SASL_SSL",
                         kafka_sasl_mechanism="OAUTHBEARER",
                         kafka_oauth_token_endpoint="http://127.0.0.1:9/oauth2/token",
                         kafka_oauth_client_id="fraudstream",
                         kafka_oauth_client_secret=CLIENT_SECRET,
                         kafka_ssl_ca_location=str(ca.cert), oidc_allow_http=True)
    result = run_cli(s, "--log-level", "debug", "topics", "create", "--partitions", "1",
                     timeout=60)
    assert result.returncode != 0
    assert_one_error_line(result.stderr, "")
    assert_no_secret(result.stdout, result.stderr)


def test_settings_that_cannot_work_fail_in_one_line_without_the_secrets(
        settings: Settings) -> None:
    env = {"FRAUDSTREAM_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
           "FRAUDSTREAM_KAFKA_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
           "FRAUDSTREAM_REDIS_PASSWORD": REDIS_PASSWORD}
    result = run_cli(settings, "topics", "create", env=env, timeout=60)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "FRAUDSTREAM_KAFKA_SASL_PASSWORD is set but")
    env["FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL"
    env["FRAUDSTREAM_KAFKA_SASL_MECHANISM"] = "SCRAM-SHA-512"
    result = run_cli(settings, "config", env=env, timeout=60)
    assert result.returncode == 2  # SCRAM without a user
    assert_one_error_line(result.stderr, "needs FRAUDSTREAM_KAFKA_SASL_USERNAME")
    assert_no_secret(result.stdout, result.stderr)


def test_the_faust_runtime_decides_over_tls_kafka_and_tls_redis(
        settings: Settings, tmp_path: Path, secure_redis: SecureRedis,
        brokers: tuple[SecureBroker, SecureBroker], ca: CertificateAuthority,
        client_certificate: tuple[Path, Path]) -> None:
    """aiokafka gets the settings in its own form (an SSL context with the CA and the
    encrypted client key), and decides the whole stream through the TLS broker."""
    s = secure_settings(settings, secure_redis, brokers[0], ca, client_certificate)
    make_topics(s, partitions=2)
    frame = simulate(recent(2, seed=5))
    log = tmp_path / "faust.log"
    with open(log, "wb") as handle:
        agent = subprocess.Popen([sys.executable, "-m", "fraudstream.stream.faust_app",
                                  "worker", "-l", "info"], env=settings_env(s), cwd=ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        produce_frame(s, frame)
        records = read_topic(s, s.topic_decisions, expect=len(frame), timeout=120)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    decided = {decision_decoder.decode(r.value).transaction_id for r in records}
    assert decided == set(frame["transaction_id"].astype(str)), log.read_text()[-2000:]
    assert brokers[0].proxy.connections > 0
    assert_no_secret(log.read_text())
