"""The HTTP scorer's limits against a real Redis, over real HTTP: every request of a key
is charged, limits are shared between servers, a key's requests in flight are bounded, a
slow body is cut off, and /metrics, /docs and /openapi.json are closed by default."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from fraudstream.settings import Settings
from fraudstream.stream.http.app import create_app
from fraudstream.stream.http.shared_limits import TOO_MANY, SharedLimits
from tests.http_helpers import Keys, live_server, make_keys, serving_settings, transaction

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


def tx(tx_id: str) -> dict[str, object]:
    return transaction(tx_id, "c1", "t1", 25.0, NOW_MS - 60_000)


def test_invalid_and_refused_requests_are_charged(settings: Settings, keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys, api_rate=0.01, api_burst=4,
                                      api_max_batch=2))
    alice = {"X-API-Key": keys.alice}
    with live_server(app) as url:
        assert httpx.post(f"{url}/v1/score", json={"nope": 1},
                          headers=alice).status_code == 422
        assert httpx.post(f"{url}/v1/score", content=b"{", headers={
            **alice, "Content-Type": "application/json"}).status_code == 422
        assert httpx.post(f"{url}/v1/score", content=b"a,b", headers={
            **alice, "Content-Type": "text/csv"}).status_code == 415
        assert httpx.post(f"{url}/v1/score", json=tx("1"), headers=alice).status_code == 200
        refused = httpx.post(f"{url}/v1/score", json=tx("2"), headers=alice)
        assert refused.status_code == 429, "three rejected requests used three tokens"
        assert httpx.post(f"{url}/v1/score", json=tx("3"),
                          headers={"X-API-Key": keys.bob}).status_code == 200


def test_two_servers_share_one_limit(settings: Settings, keys: Keys) -> None:
    """Two apps (two replicas) on one Redis: together they accept no more than the burst
    (the rate is so low that nothing refills during the test)."""
    serving = serving_settings(settings, keys, api_rate=0.001, api_burst=6, api_max_batch=1)
    first, second = create_app(serving), create_app(serving)
    with live_server(first) as one, live_server(second) as two:
        answers = [httpx.post(f"{url}/v1/score", json=tx(str(i)),
                              headers={"X-API-Key": keys.alice}).status_code
                   for i, url in enumerate([one, two] * 8)]
    assert answers.count(200) <= 6 + 1, answers  # the burst, plus at most one refill
    assert answers.count(200) >= 6 and set(answers) == {200, 429}, answers


def slow_body(url: str, key: str, sent: bytes) -> socket.socket:
    """A request whose body never finishes arriving."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 4096\r\nX-API-Key: " + key.encode() + b"\r\n\r\n" + sent)
    return conn


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_slow_body_is_cut_off_and_its_slot_is_freed(settings: Settings, keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys, api_body_timeout_s=0.5,
                                      api_max_connections_per_key=1))
    alice = {"X-API-Key": keys.alice}
    with live_server(app) as url:
        conn = slow_body(url, keys.alice, b'{"transaction_id": ')
        try:
            busy = None
            while busy is None or busy.status_code == 200:  # until the slow one holds it
                busy = httpx.post(f"{url}/v1/score", json=tx("b"), headers=alice)
            assert busy.status_code == 429
            assert "in flight" in busy.json()["detail"]
            answer = read_all(conn)  # the server closes the connection: recv returns b""
        finally:
            conn.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert httpx.post(f"{url}/v1/score", json=tx("c"), headers=alice).status_code == 200


def test_metrics_docs_and_schema_are_off_by_default(settings: Settings, keys: Keys) -> None:
    app = create_app(settings.replace(api_keys_file=str(keys.path)))
    with live_server(app) as url:
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 404, path
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_shared_limits_hold_across_instances_and_bound_requests_in_flight(
        settings: Settings) -> None:
    import redis

    client = redis.Redis.from_url(settings.redis_url or "")
    try:
        a, b = (SharedLimits(client, settings.redis_prefix, rate=0.001, burst=3,
                             max_in_flight=2, stale_s=60) for _ in range(2))
        first, second = a.admit("k"), b.admit("k")
        assert first[0] == 0.0 and second[0] == 0.0
        assert b.admit("k") == (TOO_MANY, ""), "two in flight across both instances"
        a.release("k", first[1])
        third = a.admit("k")
        assert third[0] == 0.0
        a.release("k", third[1])
        assert b.admit("k")[0] > 0, "three tokens taken across both: the bucket is empty"
        assert a.charge("other", 3) == 0.0 and b.charge("other", 1) > 0
    finally:
        client.close()


def test_requests_without_a_valid_key_are_charged_to_their_address(
        settings: Settings, keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys, api_rate=0.001, api_burst=3,
                                      api_max_batch=1))
    with live_server(app) as url:
        guesses = [httpx.post(f"{url}/v1/score", json=tx(str(i)),
                              headers={"X-API-Key": f"fsk_guess{i}"}).status_code
                   for i in range(4)]
        assert guesses == [401, 401, 401, 429]
        revoked = [httpx.post(f"{url}/v1/score", json=tx(str(i)),
                              headers={"X-API-Key": keys.revoked}).status_code
                   for i in range(4)]
        assert revoked == [403, 403, 403, 429]
        assert httpx.post(f"{url}/v1/score", json=tx("ok"),
                          headers={"X-API-Key": keys.alice}).status_code == 200
