"""Follow the registry's pointers: a promoted champion (and a challenger) is loaded on a
background thread and handed over between batches, so no batch waits for a model load and
no event is scored by half a swap.

The thread reads two small pointer files every ``interval_s``; loading a new version
(hash check, unpickling, the compiled library's self-test) happens there too. The hot path
only looks at one attribute per batch (``take``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fraudstream.models.artifact import Artifact
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer

log = logging.getLogger(__name__)

LoadScorer = Callable[[Artifact], Scorer]
Listener = Callable[[str, str, str], None]  # (role, version, outcome)


@dataclass(frozen=True)
class ModelSet:
    """What a worker scores with: the champion decides, the challenger is shadowed."""

    champion: Scorer
    challenger: Scorer | None = None

    @property
    def versions(self) -> tuple[str, str | None]:
        return self.champion.version, (self.challenger.version if self.challenger else None)


class RegistryFollower:
    def __init__(self, registry: Registry, current: ModelSet, make_scorer: LoadScorer,
                 interval_s: float = 1.0, listener: Listener | None = None) -> None:
        self._registry = registry
        self._loaded = current
        self._make_scorer = make_scorer
        self._interval_s = interval_s
        self._listener = listener or (lambda role, version, outcome: None)
        self._ready: ModelSet | None = None
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}  # role -> the version that failed to load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-follower",
                                        daemon=True)

    def start(self) -> RegistryFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def take(self) -> ModelSet | None:
        """The new model set, once, if one is ready (between batches)."""
        if self._ready is None:
            return None
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def poll_once(self) -> ModelSet | None:
        """Read the pointers and load what changed; the new set, or None if nothing did."""
        try:
            champion_version, challenger_version = self._registry.pointers()
        except OSError as exc:
            log.warning("cannot read the model registry %s: %s", self._registry.root, exc)
            return None
        loaded = self._loaded
        if champion_version is None:
            return None  # the registry lost its champion: keep scoring with ours
        champion = self._load("champion", champion_version, loaded)
        if champion is None:
            return None
        challenger = (None if challenger_version in (None, champion_version)
                      else self._load("challenger", challenger_version, loaded))
        if challenger is None and challenger_version not in (None, champion_version):
            challenger = loaded.challenger  # failed: keep the one we had
        fresh = ModelSet(champion, challenger)
        if fresh.versions == loaded.versions:
            return None
        self._loaded = fresh
        with self._lock:
            self._ready = fresh
        return fresh

    def _load(self, role: str, version: str, loaded: ModelSet) -> Scorer | None:
        for have in (loaded.champion, loaded.challenger):
            if have is not None and have.version == version:
                return have  # a challenger promoted to champion is not loaded again
        if self._failed.get(role) == version:
            return None  # already refused; try again only when the pointer moves
        try:
            scorer = self._make_scorer(self._registry.load(version))
        except Exception as exc:  # unloadable or unable to score: never ours to crash on
            self._failed[role] = version
            current = loaded.champion if role == "champion" else loaded.challenger
            log.error("%s %s refused, still scoring with %s: %s", role, version,
                      current.version if current else "none", exc)
            self._listener(role, version, "failed")
            return None
        self._failed.pop(role, None)
        log.info("%s %s loaded (%s backend)", role, version, scorer.backend)
        self._listener(role, version, "loaded")
        return scorer

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.poll_once()
            except Exception:  # never let the follower die: the worker keeps its model
                log.exception("registry follower failed; retrying")
