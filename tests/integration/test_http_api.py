"""The HTTP scorer against a real Redis and broker, over real HTTP (uvicorn on a free
loopback port): keys, limits, validation, degraded modes, health and metrics."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from fraudstream.features.definitions import FEATURE_NAMES, feature_schema_digest
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.registry import Registry
from fraudstream.models.rules import RULES_VERSION
from fraudstream.services import free_port
from fraudstream.settings import Settings
from fraudstream.stream.http.app import create_app, model_holder
from fraudstream.stream.metrics import LATENCY_BUCKETS
from tests.http_helpers import (
    METRICS_AUTH,
    Keys,
    live_server,
    make_keys,
    serving_settings,
    transaction,
)
from tests.model_factory import write_model
from tests.waiting import wait_for

NOW_MS = int(time.time() * 1000)


def tx(tx_id: str, customer: str = "c1", amount: float = 25.0) -> dict[str, object]:
    return transaction(tx_id, customer, "t1", amount, NOW_MS - 60_000)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


@pytest.fixture
def client(settings: Settings, keys: Keys) -> Iterator[httpx.Client]:
    with live_server(create_app(serving_settings(settings, keys))) as url, \
            httpx.Client(base_url=url, headers={"X-API-Key": keys.alice}, timeout=10) as c:
        yield c


def test_one_transaction_and_a_batch_get_the_stream_decision_fields(
        client: httpx.Client, settings: Settings) -> None:
    champion = Registry(settings.model_dir).champion_version()
    one = client.post("/v1/score", json=tx("a", amount=900.0))
    assert one.status_code == 200, one.text
    assert one.headers["x-model-version"] == champion
    decision = one.json()
    assert set(decision) == {"transaction_id", "customer_id", "score", "decision",
                             "model_version", "reasons", "degraded", "scored_at",
                             "latency_ms"}
    assert decision["transaction_id"] == "a" and decision["customer_id"] == "c1"
    assert 0 <= decision["score"] <= 1 and decision["decision"] in OUTCOMES
    assert decision["model_version"] == champion and decision["degraded"] == []
    assert abs(decision["scored_at"] - time.time() * 1000) < 60_000
    batch = client.post("/v1/score", json={"transactions": [tx(str(i), f"c{i}")
                                                            for i in range(20)]})
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["model_version"] == champion
    assert [d["transaction_id"] for d in body["decisions"]] == [str(i) for i in range(20)]


def test_scoring_reads_the_feature_state_and_never_writes_it(
        client: httpx.Client, settings: Settings) -> None:
    first = client.post("/v1/score", json={"transactions": [tx("x1"), tx("x2")]}).json()
    again = client.post("/v1/score", json={"transactions": [tx("x1"), tx("x2")]}).json()
    scores = [d["score"] for d in first["decisions"]]
    assert scores == [d["score"] for d in again["decisions"]], "nothing was counted"
    assert scores[0] != scores[1], "the second counts the first of its own request"
    r = redis.Redis.from_url(settings.redis_url)
    try:
        written = [k for k in r.scan_iter(match=f"{settings.redis_prefix}:*")
                   if b":ratelimit:" not in k]  # the shared rate limits live there too
        assert written == []
    finally:
        r.close()


def test_a_request_costs_one_redis_round_trip(client: httpx.Client,
                                              settings: Settings) -> None:
    r = redis.Redis.from_url(settings.redis_url)

    def mgets() -> int:
        return int(r.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

    try:
        before = mgets()
        batch = [tx(str(i), f"c{i % 7}") for i in range(50)]
        assert client.post("/v1/score", json={"transactions": batch}).status_code == 200
        assert mgets() - before == 1
    finally:
        r.close()


def test_keys_401_without_or_unknown_403_revoked(client: httpx.Client, keys: Keys) -> None:
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "fsk_made-up"}):
        answer = client.post("/v1/score", json=tx("k"), headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
        assert "X-API-Key" in answer.json()["detail"]
    anonymous = httpx.post(f"{client.base_url}/v1/score", json=tx("k"))
    assert anonymous.status_code == 401
    revoked = client.post("/v1/score", json=tx("k"), headers={"X-API-Key": keys.revoked})
    assert revoked.status_code == 403
    assert revoked.json() == {"detail": "API key 'mallory' has been revoked"}
    assert client.post("/invocations", json=tx("k"),
                       headers={"X-API-Key": "nope"}).status_code == 401
    for path in ("/healthz", "/readyz", "/openapi.json", "/ping"):
        assert httpx.get(f"{client.base_url}{path}").status_code == 200, path
    assert httpx.get(f"{client.base_url}/metrics").status_code == 401, "its own token"
    assert httpx.get(f"{client.base_url}/metrics", headers=METRICS_AUTH).status_code == 200


def test_a_key_revoked_in_the_file_is_refused_within_a_second(client: httpx.Client,
                                                              keys: Keys) -> None:
    from fraudstream.stream.http.keys import revoke_in_file

    assert client.post("/v1/score", json=tx("r")).status_code == 200
    revoke_in_file(keys.path, "alice")
    wait_for(lambda: client.post("/v1/score", json=tx("r")).status_code == 403,
             "the revocation to be picked up", 5, 0.2)


def test_each_key_is_limited_per_transaction_with_retry_after(
        settings: Settings, keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys, api_rate=0.5, api_burst=5,
                                      api_max_batch=5))
    with live_server(app) as url:
        batch = {"transactions": [tx(str(i)) for i in range(5)]}
        alice = {"X-API-Key": keys.alice}
        assert httpx.post(f"{url}/v1/score", json=batch, headers=alice).status_code == 200
        limited = httpx.post(f"{url}/v1/score", json=tx("6"), headers=alice)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert "0.5 transactions/s" in limited.json()["detail"]
        bob = httpx.post(f"{url}/v1/score", json=batch, headers={"X-API-Key": keys.bob})
        assert bob.status_code == 200, "one key's use leaves the others' buckets alone"
        metrics = httpx.get(f"{url}/metrics", headers=METRICS_AUTH).text
    assert 'fraudstream_http_rate_limited_requests_total{key="alice"} 1.0' in metrics


def test_bodies_over_the_limit_get_413_whatever_they_declare(settings: Settings,
                                                              keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys, api_max_body_bytes=2048))
    big = {"transactions": [tx(str(i)) for i in range(40)]}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10,
                                               headers={"X-API-Key": keys.alice}) as c:
        declared = c.post("/v1/score", json=big)
        assert declared.status_code == 413
        assert "2048-byte limit" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, read as it comes
            yield b'{"transactions": ['
            for i in range(200):
                yield (b"," if i else b"") + httpx.Request(
                    "POST", "/", json=tx(str(i))).content

        streamed = c.post("/v1/score", content=chunks(),
                          headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert c.post("/v1/score", json={"transactions": [tx("ok")]}).status_code == 200


def test_validation_errors_name_the_field_and_reason(client: httpx.Client) -> None:
    bad = client.post("/v1/score", json={"transactions": [tx("ok"), tx("neg", amount=-1)]})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [{
        "loc": ["body", "transactions", 1, "amount"],
        "msg": "invalid event: Expected `float` > 0.0 - at `$.amount`",
        "type": "value_error"}]
    many = client.post("/v1/score", json={"transactions": [tx(str(i)) for i in range(501)]})
    assert many.status_code == 422
    assert many.json()["detail"][0]["msg"] == "at most 500 transactions per request, got 501"
    old = client.post("/v1/score", json={**tx("old"), "timestamp": NOW_MS - 91 * 86_400_000})
    assert old.json()["detail"][0]["loc"] == ["body", "timestamp"]
    assert "beyond the 90-day limit" in old.json()["detail"][0]["msg"]
    text = client.post("/v1/score", content=b"amount=5",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert text.status_code == 415


def test_redis_down_scores_on_default_features_and_readyz_says_so(
        settings: Settings, keys: Keys) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    dead_broker = f"127.0.0.1:{free_port()}"
    app = create_app(serving_settings(settings, keys, redis_url=dead_redis,
                                      kafka_bootstrap=dead_broker, breaker_failures=2))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10,
                                               headers={"X-API-Key": keys.alice}) as c:
        answers = [c.post("/v1/score", json=tx(str(i), amount=300.0)) for i in range(4)]
        ready = c.get("/readyz")
        metrics = c.get("/metrics", headers=METRICS_AUTH).text
    assert all(a.status_code == 200 for a in answers)
    assert all(a.json()["degraded"] == ["features"] for a in answers)
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["broker", "redis"]
    assert ready.json()["checks"]["model"]["ok"] is True
    assert "fraudstream_http_feature_store_up 0.0" in metrics
    assert "fraudstream_http_feature_store_outages_total 1.0" in metrics
    assert 'fraudstream_http_degraded_decisions_total{fallback="features"} 4.0' in metrics
    assert "fraudstream_http_redis_errors_total 2.0" in metrics, "the breaker stopped calls"


def test_a_failing_model_falls_back_to_the_rules(settings: Settings, keys: Keys) -> None:
    app = create_app(serving_settings(settings, keys))

    def broken(matrix: np.ndarray) -> np.ndarray:
        raise RuntimeError("the compiled library returned garbage")

    model_holder(app).current()._probability = broken
    with live_server(app) as url:
        answer = httpx.post(f"{url}/v1/score", json=tx("m", amount=500.0),
                            headers={"X-API-Key": keys.alice})
    decision = answer.json()
    assert answer.headers["x-model-version"] == RULES_VERSION
    assert decision["model_version"] == RULES_VERSION
    assert decision["degraded"] == ["model"]
    assert decision["decision"] == "decline" and decision["reasons"] == ["high_amount"]


def test_metrics_have_latency_per_route_and_status_and_no_secret(
        settings: Settings, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-redis-pass"
    host = settings.redis_url.split("//", 1)[1]
    app = create_app(serving_settings(settings, keys, redis_url=f"redis://:{password}@{host}"))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        c.post("/v1/score", json=tx("a"), headers={"X-API-Key": keys.alice})
        c.post("/v1/score", json=tx("a"), headers={"X-API-Key": keys.revoked})
        c.post("/v1/score", json=tx("a"), headers={"X-API-Key": "fsk_guess"})
        c.get("/no/such/path")
        metrics = c.get("/metrics", headers=METRICS_AUTH).text
        readiness = c.get("/readyz").text
    assert 'route="/v1/score",status="200"' in metrics
    assert 'route="/v1/score",status="403"' in metrics
    assert 'route="/v1/score",status="401"' in metrics
    assert 'route="unmatched",status="404"' in metrics
    assert 'fraudstream_http_rejected_requests_total{reason="revoked_key"} 1.0' in metrics
    buckets = [line.split('le="')[1].split('"')[0] for line in metrics.splitlines()
               if line.startswith("fraudstream_http_request_duration_seconds_bucket")
               and 'route="/healthz"' not in line and 'status="200"' in line
               and 'route="/v1/score"' in line]
    assert [float(b) for b in buckets[:-1]] == list(LATENCY_BUCKETS)
    assert 'fraudstream_http_model_info{backend="compiled"' in metrics
    everything = metrics + readiness + caplog.text
    for secret in (password, keys.alice, keys.revoked, "fsk_guess"):
        assert secret not in everything
    assert keys.path.read_text().split(":")[1][:64] not in metrics


def test_the_openapi_schema_describes_the_routes(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/score", "/invocations", "/healthz", "/readyz", "/metrics", "/ping"} <= set(
        paths)
    score = paths["/v1/score"]["post"]
    assert set(score["responses"]) >= {"200", "401", "403", "413", "415", "422", "429"}
    assert score["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key"}
    stamp = schema["components"]["schemas"]["Transaction"]["properties"]["timestamp"]
    low, high = stamp["anyOf"][0]["minimum"], stamp["anyOf"][0]["maximum"]
    assert low > time.time() * 1000 - 90 * 86_400_000 > low - 3_600_000
    assert time.time() * 1000 < high < time.time() * 1000 + 3_600_000


def test_a_promotion_is_followed_without_a_restart(settings: Settings, keys: Keys,
                                                   tmp_path: Path) -> None:
    root = tmp_path / "registry"
    shutil.copytree(settings.model_dir, root)
    write_model(root, "newcomer", seed=3)
    registry = Registry(root)
    champion = registry.champion_version()
    app = create_app(serving_settings(settings, keys, model_dir=str(root), model_poll_s=0.1))
    with live_server(app) as url, \
            httpx.Client(base_url=url, headers={"X-API-Key": keys.alice}, timeout=10) as c:
        assert c.post("/v1/score", json=tx("before")).json()["model_version"] == champion
        registry.promote("newcomer", FEATURE_NAMES, feature_schema_digest())
        versions: list[str] = []

        def followed() -> bool:
            answer = c.post("/v1/score", json=tx(f"during-{len(versions)}"))
            assert answer.status_code == 200, answer.text
            versions.append(answer.json()["model_version"])
            return versions[-1] == "newcomer"

        wait_for(followed, "the promotion to be followed", 15)
        metrics = c.get("/metrics", headers=METRICS_AUTH).text
    assert versions[-1] == "newcomer", "the promotion was not followed"
    assert set(versions) <= {champion, "newcomer"}
    assert versions == sorted(versions, key=lambda v: v == "newcomer"), "never back"
    assert 'fraudstream_http_model_info{backend="sklearn",version="newcomer"} 1.0' in metrics
    assert f'version="{champion}"}} 0.0' in metrics
