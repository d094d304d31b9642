"""The hostile corpus (tests/hostile_corpus.py) against `fraudstream serve` as a process:
every body gets an answer below 500 with a reason: 200 for a valid event, 413 for one too
large, 422 for one too deeply nested or otherwise invalid. Before, the ignored field
nested 1,000 deep answered 500 (RecursionError)."""

from __future__ import annotations

from pathlib import Path

import httpx

from fraudstream.services import free_port
from fraudstream.settings import Settings
from tests.e2e.test_hostile_inputs import expected_outcome
from tests.e2e.test_serve import serving, stop
from tests.hostile_corpus import corpus
from tests.http_helpers import make_keys


def test_hostile_corpus_gets_no_500_from_the_http_scorer(settings: Settings,
                                                         tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"FRAUDSTREAM_API_KEYS_FILE": str(keys.path)}
    answers: dict[str, int] = {}
    with serving(settings, log, port, "--port", str(port), "--host", "127.0.0.1",
                 env=env) as process:
        url = f"http://127.0.0.1:{port}/v1/score"
        headers = {"X-API-Key": keys.alice, "Content-Type": "application/json"}
        with httpx.Client(timeout=30) as client:
            for case in corpus():
                body = case.value or b""
                single = client.post(url, content=body, headers=headers)
                batch = client.post(url, content=b'{"transactions":[' + body + b"]}",
                                    headers=headers)
                for answer in (single, batch):
                    assert answer.status_code < 500, (case.name, answer.text[:300])
                    if answer.status_code != 200:
                        assert answer.content, f"{case.name}: no reason given"
                expected = expected_outcome(case, settings)
                if expected == "decided":
                    assert single.status_code == 200, (case.name, single.text[:300])
                else:
                    assert single.status_code in (413, 422), (case.name, single.text[:300])
                too_deep = "deep" in case.name and "within" not in case.name
                # The body's depth is checked before any event in it is decoded; a body
                # that is not too deep and too large, or an event in it, is 413.
                if len(body) > settings.api_max_body_bytes or (
                        not too_deep and len(body) > settings.max_event_bytes
                        and body.lstrip()[:1] == b"{"):
                    assert single.status_code == 413, (case.name, single.text[:300])
                elif too_deep:
                    assert single.status_code == 422, (case.name, single.text[:300])
                    assert "too deeply nested" in single.text
                answers[case.name] = single.status_code
        stop(process, log)
    print("[serve hostile corpus] " + "; ".join(f"{k}: {v}" for k, v in answers.items()))
