"""Helpers for the HTTP scorer's tests: keys files, a live uvicorn server on a free
loopback port, transactions as JSON."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from fraudstream.services import free_port
from fraudstream.settings import Settings
from fraudstream.stream.http.app import model_holder
from fraudstream.stream.http.keys import create_key, revoke_in_file
from tests.waiting import wait_for


@dataclass(frozen=True)
class Keys:
    path: Path
    alice: str
    bob: str
    revoked: str  # mallory's key, revoked


def make_keys(directory: Path) -> Keys:
    path = directory / "api-keys"
    alice, _ = create_key("alice", path)
    bob, _ = create_key("bob", path)
    mallory, _ = create_key("mallory", path)
    revoke_in_file(path, "mallory")
    return Keys(path, alice, bob, mallory)


METRICS_TOKEN = "test-metrics-token"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def serving_settings(settings: Settings, keys: Keys, **changes: Any) -> Settings:
    """Serving settings with the keys file, /metrics behind ``METRICS_TOKEN`` and the
    schema served (production leaves both off); ``changes`` win."""
    return settings.replace(**{"api_keys_file": str(keys.path),
                               "api_metrics_token": METRICS_TOKEN, "api_docs": True,
                               **changes})


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on a free loopback port (a thread of this process);
    yields the base URL and stops the server on the way out."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="off", loop="asyncio",
                            http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    def started() -> bool:
        assert thread.is_alive(), "the server thread ended before it started serving"
        return bool(server.started)

    wait_for(started, "the server to start", 20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        model_holder(app).close()
        assert not thread.is_alive(), "server did not stop"


def transaction(tx_id: str, customer: str, terminal: str, amount: float,
                timestamp_ms: int) -> dict[str, Any]:
    return {"transaction_id": tx_id, "timestamp": timestamp_ms, "customer_id": customer,
            "terminal_id": terminal, "amount": amount}
