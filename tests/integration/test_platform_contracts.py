"""The managed platforms' contracts, driven as the platforms drive them: SageMaker over
HTTP (/ping, /invocations with JSON and CSV), Vertex AI over HTTP (AIP_* routes,
instances in, predictions out), Azure ML through its entry script (init, run). Each
one's scores are compared with the stream worker's for the same events, on the same
feature state."""

from __future__ import annotations

import csv
import importlib.util
import io
import time
from pathlib import Path
from types import ModuleType

import httpx
import msgspec
import pandas as pd
import pytest

from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.http.app import create_app
from tests.http_helpers import live_server, transaction
from tests.kafka_helpers import make_topics, read_topic, running_worker
from tests.population import recent

ROOT = Path(__file__).resolve().parents[2]
VERTEX = {"AIP_HTTP_PORT": "8080", "AIP_HEALTH_ROUTE": "/v1/endpoints/7/deployedModels/9",
          "AIP_PREDICT_ROUTE": "/v1/endpoints/7/deployedModels/9:predict"}
NOW_MS = int(time.time() * 1000)


def platform_settings(settings: Settings) -> Settings:
    """The platforms authenticate their callers: no API keys."""
    return settings.replace(api_auth="platform")


def events(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [transaction(str(r.transaction_id), str(r.customer_id), str(r.terminal_id),
                        float(r.amount), int(r.timestamp)) for r in frame.itertuples()]


def as_csv(frame: pd.DataFrame, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["transaction_id", "timestamp", "customer_id", "terminal_id",
                         "amount"])
    for r in frame.itertuples():
        writer.writerow([r.transaction_id, r.timestamp, r.customer_id, r.terminal_id,
                         repr(float(r.amount))])
    return out.getvalue().encode()


def entry_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("azureml_score",
                                                  ROOT / "deploy/azureml/score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sagemaker_ping_and_invocations(settings: Settings) -> None:
    one = transaction("s1", "c1", "t1", 42.0, NOW_MS - 60_000)
    with live_server(create_app(platform_settings(settings), environ={})) as url, \
            httpx.Client(base_url=url, timeout=10) as c:
        ping = c.get("/ping")
        assert ping.status_code == 200 and ping.content == b""
        single = c.post("/invocations", json=one)
        assert single.status_code == 200 and single.json()["transaction_id"] == "s1"
        batch = c.post("/invocations", json={"transactions": [one, {**one,
                                                                    "transaction_id": "s2"}]})
        assert [d["transaction_id"] for d in batch.json()["decisions"]] == ["s1", "s2"]
        rows = f"s3,{NOW_MS - 60_000},c1,t1,42.0\ns4,{NOW_MS - 60_000},c2,t2,7.5,EUR\n"
        as_rows = c.post("/invocations", content=rows.encode(),
                         headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        assert as_rows.status_code == 200
        assert as_rows.headers["content-type"].startswith("text/csv")
        parsed = list(csv.reader(io.StringIO(as_rows.text)))
        assert [r[0] for r in parsed] == ["s3", "s4"] and all(len(r) == 7 for r in parsed)
        as_json = c.post("/invocations", content=rows.encode(),
                         headers={"Content-Type": "text/csv"})
        assert [d["transaction_id"] for d in as_json.json()["decisions"]] == ["s3", "s4"]
        assert c.post("/invocations", content=b"x",
                      headers={"Content-Type": "application/x-npy"}).status_code == 415
        assert c.post("/invocations", json=one,
                      headers={"Accept": "application/xml"}).status_code == 406
        bad = c.post("/invocations", content=b"s5,yesterday,c,t,1\n",
                     headers={"Content-Type": "text/csv"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", 0, "timestamp"]


def test_vertex_routes_come_from_its_variables(settings: Settings) -> None:
    one = transaction("v1", "c1", "t1", 42.0, NOW_MS - 60_000)
    with live_server(create_app(platform_settings(settings), environ=VERTEX)) as url, \
            httpx.Client(base_url=url, timeout=10) as c:
        health = c.get(VERTEX["AIP_HEALTH_ROUTE"])
        assert health.status_code == 200
        answer = c.post(VERTEX["AIP_PREDICT_ROUTE"],
                        json={"instances": [one, {**one, "transaction_id": "v2"}],
                              "parameters": {"ignored": True}})
        assert answer.status_code == 200
        assert list(answer.json()) == ["predictions"]
        assert [p["transaction_id"] for p in answer.json()["predictions"]] == ["v1", "v2"]
        missing = c.post(VERTEX["AIP_PREDICT_ROUTE"], json={"transactions": [one]})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "instances"]


def test_vertex_health_and_predict_may_share_one_path(settings: Settings) -> None:
    route = "/v1/endpoints/7/deployedModels/9"
    environ = {"AIP_HEALTH_ROUTE": route, "AIP_PREDICT_ROUTE": route}
    one = transaction("v1", "c1", "t1", 42.0, NOW_MS - 60_000)
    with live_server(create_app(platform_settings(settings), environ=environ)) as url:
        assert httpx.get(url + route).status_code == 200
        assert httpx.post(url + route, json={"instances": [one]}).status_code == 200


def test_azureml_entry_script_init_and_run(settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in settings.child_environ({}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_MODEL_DIR", settings.model_dir)
    script = entry_script()
    script.init()
    try:
        one = transaction("z1", "c1", "t1", 42.0, NOW_MS - 60_000)
        decision = script.run(msgspec.json.encode(one).decode())
        batch = script.run(msgspec.json.encode({"transactions": [one]}))
        invalid = script.run('{"transaction_id": "z2"}')
    finally:
        script.shutdown()
    assert decision["transaction_id"] == "z1" and 0 <= decision["score"] <= 1
    assert [d["transaction_id"] for d in batch["decisions"]] == ["z1"]
    assert invalid["detail"][0]["loc"] == ["body", "timestamp"]


def test_every_contract_scores_like_the_stream(settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """History streamed first builds the feature state; the probe events are then
    scored through every contract (which read the state and leave it alone), then
    streamed too: each contract's scores must equal the worker's."""
    make_topics(settings, partitions=2)
    frame = simulate(recent(3, seed=11))
    history, probe = frame.iloc[:-150], frame.iloc[-150:]
    assert probe["customer_id"].isin(history["customer_id"]).mean() > 0.5, \
        "most probe customers have a history: the state matters"
    for name, value in settings.child_environ({}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_MODEL_DIR", settings.model_dir)
    app = create_app(platform_settings(settings), environ=VERTEX)
    items = events(probe)
    ids = [str(i) for i in probe["transaction_id"]]
    with running_worker(settings):
        produce_frame(settings, history)
        read_topic(settings, settings.topic_decisions, expect=len(history))
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
            answers = {
                "/v1/score": c.post("/v1/score", json={"transactions": items}).json(),
                "sagemaker json": c.post("/invocations",
                                         json={"transactions": items}).json(),
                "vertex": c.post(VERTEX["AIP_PREDICT_ROUTE"], json={"instances": items}
                                 ).json(),
            }
            rows = c.post("/invocations", content=as_csv(probe, header=True),
                          headers={"Content-Type": "text/csv", "Accept": "text/csv"}).text
        script = entry_script()
        script.init()
        try:
            azure = script.run(msgspec.json.encode({"transactions": items}).decode())
        finally:
            script.shutdown()
        produce_frame(settings, probe)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame))
    stream = {d.transaction_id: d for d in (decision_decoder.decode(r.value) for r in records)}
    assert set(ids) <= set(stream)
    scores = {name: [d["score"] for d in answer.get("decisions", answer.get("predictions"))]
              for name, answer in answers.items()}
    scores["sagemaker csv"] = [float(r[2]) for r in csv.reader(io.StringIO(rows))]
    scores["azureml"] = [d["score"] for d in azure["decisions"]]
    expected = [stream[i].score for i in ids]
    outcomes = [stream[i].decision for i in ids]
    assert len(set(expected)) > 10, "the probe scores differ from event to event"
    for name, got in scores.items():
        assert len(got) == len(expected), name
        worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
        assert worst <= 1e-9, f"{name}: scores differ from the stream's by up to {worst}"
    for name in ("/v1/score", "sagemaker json", "vertex"):
        answer = answers[name].get("decisions", answers[name].get("predictions"))
        assert [d["decision"] for d in answer] == outcomes, name
        assert [d["transaction_id"] for d in answer] == ids, name
        assert all(d["degraded"] == [] for d in answer), name
