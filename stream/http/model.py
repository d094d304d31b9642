"""The one place the HTTP scorer gets its model from.

Every request asks ``ModelHolder.current()`` for the scorer, once, and scores its whole
batch with it. A promoted champion (or a rollback) is loaded by the registry follower on
its own thread, as in the stream worker, and taken over by the next request; a request
that already holds the old model finishes with it, and each answer names the version
that made it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from fraudstream.models.follower import ModelSet, RegistryFollower
from fraudstream.models.registry import Registry
from fraudstream.models.scorer import Scorer, load_scorer

log = logging.getLogger(__name__)

OnSwap = Callable[[Scorer, Scorer], None]


class ModelHolder:
    def __init__(self, scorer: Scorer, follower: RegistryFollower | None = None,
                 on_swap: OnSwap | None = None) -> None:
        self._scorer = scorer
        self._follower = follower
        self._on_swap = on_swap or (lambda old, new: None)

    @classmethod
    def champion(cls, model_dir: str | Path, poll_s: float | None = None,
                 on_swap: OnSwap | None = None) -> ModelHolder:
        """The registry's champion, verified, compiled and warmed up (raises
        ArtifactError); with ``poll_s``, promotions are followed every ``poll_s``."""
        registry = Registry(model_dir)
        scorer = load_scorer(registry.load_champion())
        follower = (RegistryFollower(registry, ModelSet(scorer), load_scorer, poll_s).start()
                    if poll_s is not None else None)
        return cls(scorer, follower, on_swap)

    def current(self) -> Scorer:
        """The model to score the next request with."""
        if self._follower is not None and (promoted := self._follower.take()) is not None:
            self.replace(promoted.champion)
        return self._scorer

    def replace(self, scorer: Scorer) -> None:
        """Swap the model: requests that already hold the old one finish with it."""
        old, self._scorer = self._scorer, scorer
        if old is not scorer:
            log.info("now scoring with champion %s (was %s)", scorer.version, old.version)
            self._on_swap(old, scorer)

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
