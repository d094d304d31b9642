"""Rules fallback: decides when the model itself fails.

Each rule looks at one feature and fires when the value is finite and strictly above the
rule's threshold; NaN and infinity never fire. A fired rule of weight ``w`` says "fraud
with probability w" on its own, and the rules combine as independent evidence (noisy-OR):
``score = 1 - prod(1 - w)`` over the fired rules, 0 when none fires. Outcomes come from
``models.decisions.decide``; each event's reasons name the rules that fired, strongest
first (also for approvals: a fired rule is why the score is not 0).

The rules follow the simulated fraud scenarios (``fraudstream.simulator.generator``) and
the default thresholds were checked on a 90-day simulation (2,000 customers):

high_amount                    amount > 220: scenario 1 exactly. Precision 1.00.
amount_far_above_customer_mean amount over the customer's 30-day mean > 3: scenario 3
                               (a compromised customer's amounts times 5). Precision 0.996.
risky_terminal                 terminal_risk_7d > 0.3: scenario 2 (every transaction of a
                               compromised terminal for 28 days; labels arrive 7 days
                               late). Precision 0.57: a review, not a decline.
many_transactions_today        customer_nb_tx_1d > 8: velocity. The simulator has no such
                               scenario (precision there is the base rate), so its weight
                               never changes an outcome at the default thresholds: it only
                               shows up as a reason.

On default features (``features.online.default_matrix``: Redis down too) only
``high_amount`` can fire: counts are 1, the ratio is 1 and terminal risk is 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fraudstream.features.definitions import (
    COL_AMOUNT,
    COL_AMOUNT_RATIO,
    COL_COUNT,
    COL_TERMINAL_RISK,
    FEATURE_NAMES,
    N_FEATURES,
)
from fraudstream.models.decisions import DEFAULT_THRESHOLDS, decide
from fraudstream.models.scorer import ScoredBatch

log = logging.getLogger(__name__)

RULES_VERSION = "rules-1"
MODEL_DEGRADED = "model"  # a decision's ``degraded`` entry when the rules decided
HIGH_AMOUNT = "high_amount"
AMOUNT_OVER_MEAN = "amount_far_above_customer_mean"
RISKY_TERMINAL = "risky_terminal"
MANY_TRANSACTIONS = "many_transactions_today"
DEFAULT_WEIGHTS: Mapping[str, float] = {
    HIGH_AMOUNT: 0.95,
    AMOUNT_OVER_MEAN: 0.92,
    RISKY_TERMINAL: 0.6,
    MANY_TRANSACTIONS: 0.2,
}


@dataclass(frozen=True)
class Rule:
    name: str
    column: int  # index into FEATURE_NAMES
    over: float  # fires when the feature is finite and strictly above this
    weight: float  # in [0, 1]

    @property
    def feature(self) -> str:
        return FEATURE_NAMES[self.column]


class SupportsScore(Protocol):
    def score(self, matrix: np.ndarray) -> ScoredBatch: ...


class RulesScorer:
    """Scores a feature matrix (columns of ``FEATURE_NAMES``) with fixed rules; returns
    the same ``ScoredBatch`` as ``models.scorer.Scorer``.

    ``thresholds`` are the review/decline cut-offs for the rules' own score (defaults:
    ``DEFAULT_THRESHOLDS``); the model's thresholds are tuned to the model's scores and
    mean nothing here."""

    version = RULES_VERSION

    def __init__(self, *, high_amount: float = 220.0, amount_over_mean: float = 3.0,
                 terminal_risk: float = 0.3, daily_count: float = 8.0,
                 weights: Mapping[str, float] | None = None,
                 thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> None:
        chosen = dict(DEFAULT_WEIGHTS)
        for name, weight in (weights or {}).items():
            if name not in chosen:
                raise ValueError(f"unknown rule {name!r}; rules are {sorted(chosen)}")
            chosen[name] = weight
        rules = [
            Rule(HIGH_AMOUNT, COL_AMOUNT, high_amount, chosen[HIGH_AMOUNT]),
            Rule(AMOUNT_OVER_MEAN, COL_AMOUNT_RATIO, amount_over_mean,
                 chosen[AMOUNT_OVER_MEAN]),
            Rule(RISKY_TERMINAL, COL_TERMINAL_RISK[7], terminal_risk, chosen[RISKY_TERMINAL]),
            Rule(MANY_TRANSACTIONS, COL_COUNT[1], daily_count, chosen[MANY_TRANSACTIONS]),
        ]
        for rule in rules:
            if not math.isfinite(rule.over):
                raise ValueError(f"rule {rule.name}: threshold must be finite, got {rule.over}")
            if not 0.0 <= rule.weight <= 1.0:
                raise ValueError(f"rule {rule.name}: weight must be in [0, 1], "
                                 f"got {rule.weight}")
        review, decline = thresholds["review"], thresholds["decline"]
        if not 0.0 <= review <= decline <= 1.0:
            raise ValueError(f"thresholds need 0 <= review <= decline <= 1, got {thresholds}")
        # Strongest first: the order of the reasons.
        self.rules: tuple[Rule, ...] = tuple(sorted(rules, key=lambda r: -r.weight))
        self.thresholds = {"review": float(review), "decline": float(decline)}
        self._columns = np.array([r.column for r in self.rules], dtype=np.int64)
        self._over = np.array([r.over for r in self.rules], dtype=np.float64)
        self._keep = 1.0 - np.array([r.weight for r in self.rules], dtype=np.float64)

    def fired(self, matrix: np.ndarray) -> np.ndarray:
        """(events, rules) booleans, rules in ``self.rules`` order."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != N_FEATURES:
            raise ValueError(f"expected a (n, {N_FEATURES}) feature matrix, "
                             f"got shape {matrix.shape}")
        values: npt.NDArray[np.float64] = matrix[:, self._columns]
        return np.isfinite(values) & (values > self._over)

    def score(self, matrix: np.ndarray) -> ScoredBatch:
        fired = self.fired(matrix)
        scores = np.clip(1.0 - np.where(fired, self._keep, 1.0).prod(axis=1), 0.0, 1.0)
        codes = decide(scores, self.thresholds)
        names = [rule.name for rule in self.rules]
        reasons: list[list[str]] = [[] for _ in range(fired.shape[0])]
        for event in np.flatnonzero(fired.any(axis=1)).tolist():
            reasons[event] = [names[j] for j in np.flatnonzero(fired[event]).tolist()]
        return ScoredBatch(scores, codes, reasons)


class _BadScores(ValueError):
    pass


def score_with_fallback(scorer: SupportsScore, rules: RulesScorer,
                        matrix: np.ndarray) -> tuple[ScoredBatch, bool]:
    """``scorer.score(matrix)``, or the rules' decisions when the model raises or returns
    non-finite scores (or a result of the wrong length): then one warning is logged and
    the second value is True ("fell back"). The whole batch falls back together. An
    exception from the rules themselves (a malformed matrix) propagates."""
    n = len(matrix)
    try:
        scored = scorer.score(matrix)
        _check(scored, n)
    except Exception as exc:
        log.warning("model scoring failed, deciding with rules: %s: %s",
                    type(exc).__name__, exc,
                    extra={"model_version": getattr(scorer, "version", None), "events": n})
        return rules.score(matrix), True
    return scored, False


def _check(scored: ScoredBatch, n: int) -> None:
    scores = np.asarray(scored.scores, dtype=np.float64)
    if scores.shape != (n,) or len(scored.codes) != n or len(scored.reasons) != n:
        raise _BadScores(f"expected {n} results, got scores of shape {scores.shape}, "
                         f"{len(scored.codes)} codes, {len(scored.reasons)} reason lists")
    if math.isfinite(float(scores.sum())):  # then every score is finite (one sum, no
        return                               # array of flags for a batch of one)
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise _BadScores(f"{bad} of {n} scores are not finite")
