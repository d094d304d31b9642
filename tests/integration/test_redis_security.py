"""The feature store and a real worker on a Redis that wants TLS, a password and an ACL
user, with certificates the test generates: a single server and a three-node cluster
(TLS on the cluster bus too). A wrong password or an untrusted certificate stops the
worker with one readable line that never contains the password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fraudstream.errors import CredentialsError
from fraudstream.features.cluster_store import ClusterStateStore, state_store_from_url
from fraudstream.features.store import RedisStateStore
from fraudstream.security import redis_auth
from fraudstream.settings import Settings
from fraudstream.stream.app import build_worker
from tests.certificates import CertificateAuthority, Issued, make_ca
from tests.kafka_helpers import decide_simulated_stream
from tests.secure_redis import SecureRedis, acl_user, start_secure_redis

WORKER, WORKER_PASSWORD = "fraud-worker", "worker-pass-e4a1c7"
DEFAULT_PASSWORD = "default-pass-93b0d2"
WRONG_PASSWORD = "wrong-pass-5f6e7d"
# The worker may touch its feature keys (test prefixes) and its warm-up key, nothing else.
WORKER_KEYS = "~test-* ~fraudstream:*"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Issued, Path]:
    directory = tmp_path_factory.mktemp("redis-pki")
    ca = make_ca(directory)
    stranger = make_ca(directory / "stranger", name="some-other-ca")
    return ca, ca.issue(directory, "redis-server"), stranger.cert


@pytest.fixture(scope="module")
def secure_redis(pki: tuple[CertificateAuthority, Issued, Path]) -> Iterator[SecureRedis]:
    ca, server, _ = pki
    server_ = start_secure_redis(ca, server, [acl_user(WORKER, WORKER_PASSWORD, WORKER_KEYS)],
                                 default_password=DEFAULT_PASSWORD)
    try:
        yield server_
    finally:
        server_.stop()


@pytest.fixture(scope="module")
def secure_cluster(pki: tuple[CertificateAuthority, Issued, Path]) -> Iterator[SecureRedis]:
    ca, server, _ = pki
    cluster = start_secure_redis(ca, server, [acl_user(WORKER, WORKER_PASSWORD, WORKER_KEYS)],
                                 cluster_nodes=3)
    try:
        yield cluster
    finally:
        cluster.stop()


def secured(settings: Settings, target: SecureRedis, **changes: object) -> Settings:
    return settings.replace(**{"redis_url": target.url, "redis_username": WORKER,
                               "redis_password": WORKER_PASSWORD,
                               "redis_tls_ca_file": str(target.ca), **changes})


def _round_trip(store: RedisStateStore | ClusterStateStore, prefix: str) -> None:
    keys = [f"{prefix}:c:{i}".encode() for i in range(20)]
    assert store.compare_and_set_many(keys, [None] * 20, [b"v%d" % i for i in range(20)],
                                      60_000) == []
    assert store.get_many(keys) == [b"v%d" % i for i in range(20)]


def test_the_store_speaks_tls_as_the_acl_user(settings: Settings,
                                              secure_redis: SecureRedis) -> None:
    s = secured(settings, secure_redis)
    store = state_store_from_url(s.redis_url or "", False, 2.0, redis_auth(s))
    assert isinstance(store, RedisStateStore)
    assert store.client.connection_pool.connection_class is redis.SSLConnection
    _round_trip(store, s.redis_prefix)
    assert store.client.acl_whoami() == WORKER
    with pytest.raises(redis.exceptions.NoPermissionError):  # the ACL holds: not its keys
        store.client.set("someone-else:key", b"x")
    store.close()


def test_credentials_in_the_url_work_too(settings: Settings,
                                         secure_redis: SecureRedis) -> None:
    port, ca = secure_redis.ports[0], str(secure_redis.ca)
    for url, who in ((f"rediss://:{DEFAULT_PASSWORD}@127.0.0.1:{port}/0", "default"),
                     (f"rediss://{WORKER}:{WORKER_PASSWORD}@127.0.0.1:{port}/0", WORKER)):
        s = settings.replace(redis_url=url, redis_tls_ca_file=ca)
        store = state_store_from_url(url, False, 2.0, redis_auth(s))
        assert isinstance(store, RedisStateStore)
        _round_trip(store, f"{s.redis_prefix}-{who}")
        assert store.client.acl_whoami() == who
        store.close()


def test_a_worker_decides_with_its_features_in_a_tls_redis(
        settings: Settings, secure_redis: SecureRedis) -> None:
    s = secured(settings, secure_redis)
    sent, decisions = decide_simulated_stream(s)
    assert len({d.transaction_id for d in decisions}) == sent
    assert not [d for d in decisions if d.degraded]  # every one read its features
    admin = secure_redis.admin()
    assert len(list(admin.scan_iter(match=f"{s.redis_prefix}:*", count=1000))) > 0
    admin.close()


def test_a_wrong_password_is_one_line_without_the_password(
        settings: Settings, secure_redis: SecureRedis) -> None:
    with pytest.raises(CredentialsError) as caught:
        build_worker(secured(settings, secure_redis, redis_password=WRONG_PASSWORD))
    message = str(caught.value)
    assert "refused the credentials" in message and "\n" not in message
    assert WRONG_PASSWORD not in message and WORKER_PASSWORD not in message
    assert f"127.0.0.1:{secure_redis.ports[0]}" in message


def test_an_untrusted_certificate_is_one_line(
        settings: Settings, secure_redis: SecureRedis,
        pki: tuple[CertificateAuthority, Issued, Path]) -> None:
    _, _, stranger_ca = pki
    with pytest.raises(CredentialsError) as caught:
        build_worker(secured(settings, secure_redis, redis_tls_ca_file=str(stranger_ca)))
    message = str(caught.value)
    assert "failed the TLS handshake" in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert "\n" not in message and WORKER_PASSWORD not in message


def test_a_tls_cluster_takes_the_same_settings(settings: Settings,
                                               secure_cluster: SecureRedis) -> None:
    s = secured(settings, secure_cluster, redis_cluster=True)
    store = state_store_from_url(s.redis_url or "", True, 2.0, redis_auth(s))
    assert isinstance(store, ClusterStateStore)
    _round_trip(store, s.redis_prefix)
    nodes = store.client.get_nodes()
    assert len(nodes) == 3
    assert all(node.redis_connection.connection_pool.connection_class is redis.SSLConnection
               for node in nodes)


def test_a_worker_on_the_tls_cluster_decides(settings: Settings,
                                             secure_cluster: SecureRedis) -> None:
    s = secured(settings, secure_cluster, redis_cluster=True)
    sent, decisions = decide_simulated_stream(s)
    assert len({d.transaction_id for d in decisions}) == sent
    assert not [d for d in decisions if d.degraded]


def test_a_wrong_cluster_password_is_one_line(settings: Settings,
                                              secure_cluster: SecureRedis) -> None:
    with pytest.raises(CredentialsError) as caught:
        build_worker(secured(settings, secure_cluster, redis_cluster=True,
                             redis_password=WRONG_PASSWORD))
    message = str(caught.value)
    assert "refused the credentials" in message and "\n" not in message
    assert WRONG_PASSWORD not in message
