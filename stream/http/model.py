"""The one place the HTTP scorer gets its model from.

Every request asks ``ModelHolder.current()`` for the scorer, once, and scores its whole
batch with it, so a model swapped in by ``replace`` (a promoted champion, reloaded)
takes over between requests and each answer names the version that made it.
"""

from __future__ import annotations

from pathlib import Path

from features.definitions import FEATURE_NAMES
from models.registry import Registry
from models.scorer import Scorer


class ModelHolder:
    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    @classmethod
    def champion(cls, model_dir: str | Path) -> ModelHolder:
        """The registry's champion, verified and compiled (raises ArtifactError)."""
        return cls(load_champion(model_dir))

    def current(self) -> Scorer:
        """The model to score the next request with."""
        return self._scorer

    def replace(self, scorer: Scorer) -> None:
        """Swap the model: requests that already hold the old one finish with it."""
        self._scorer = scorer


def load_champion(model_dir: str | Path) -> Scorer:
    """The registry's champion as a verified, compiled Scorer."""
    return Scorer(Registry(model_dir).load_champion(), FEATURE_NAMES)
