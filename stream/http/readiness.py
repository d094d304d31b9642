"""``/readyz``: is the broker reachable, does Redis answer, is a model loaded?

Each check is bounded in time (the whole set well under a Kubernetes probe's default
one-second timeout) and runs on its own clients, never on the scoring path's. Results
are kept for a second, so a burst of probes costs one round of checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from fraudstream.features.store import StateStore
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings
from fraudstream.stream.http.model import ModelHolder
from fraudstream.stream.kafka_config import admin_config

BROKER_TIMEOUT_S = 0.5
CACHE_S = 1.0
PROBE_KEY = b"fraudstream:readyz"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class Readiness:
    def __init__(self, settings: Settings, model: ModelHolder,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._model = model
        self._clock = clock
        self._store: StateStore | None = (
            feature_state_store(settings) if settings.redis_url else None)
        self._admin = (AdminClient(admin_config(settings))
                       if settings.kafka_bootstrap else None)
        self._lock = threading.Lock()
        self._last: tuple[float, list[Check]] | None = None

    def checks(self) -> list[Check]:
        """Blocking (up to about half a second): call it off the event loop."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < CACHE_S:
                return self._last[1]
            result = [self._broker(), self._redis(), self._model_check()]
            self._last = (self._clock(), result)
            return result

    def _broker(self) -> Check:
        if self._admin is None:
            return Check("broker", True, "not configured (HTTP scoring does not need it)")
        try:
            metadata = self._admin.list_topics(timeout=BROKER_TIMEOUT_S)
        except KafkaException as exc:
            return Check("broker", False, f"unreachable: {exc.args[0].str()}")
        return Check("broker", True, f"{len(metadata.brokers)} broker(s) answered")

    def _redis(self) -> Check:
        if self._store is None:
            return Check("redis", False, "not configured")
        try:
            self._store.get_many([PROBE_KEY])
        except Exception as exc:  # any failure to answer is "not ready", with its reason
            return Check("redis", False, f"not answering: {exc}")
        return Check("redis", True, "answered")

    def _model_check(self) -> Check:
        scorer = self._model.current()
        return Check("model", True, f"{scorer.version} ({scorer.backend})")
