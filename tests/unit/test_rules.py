"""models.rules: the rules fallback and score_with_fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fraudstream.features.definitions import FEATURE_NAMES, N_FEATURES
from fraudstream.features.online import TransactionBatch, default_matrix
from fraudstream.models.artifact import Artifact
from fraudstream.models.decisions import APPROVE, DECLINE, REVIEW
from fraudstream.models.rules import (
    AMOUNT_OVER_MEAN,
    DEFAULT_WEIGHTS,
    HIGH_AMOUNT,
    MANY_TRANSACTIONS,
    RISKY_TERMINAL,
    RulesScorer,
    score_with_fallback,
)
from fraudstream.models.scorer import ScoredBatch, Scorer

COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
# A regular customer at a clean terminal: no rule fires.
QUIET = {
    "amount": 50.0, "is_weekend": 0.0, "is_night": 0.0,
    "customer_nb_tx_1d": 2.0, "customer_nb_tx_7d": 12.0, "customer_nb_tx_30d": 50.0,
    "customer_avg_amount_1d": 45.0, "customer_avg_amount_7d": 48.0,
    "customer_avg_amount_30d": 50.0, "customer_seconds_since_prev": 20_000.0,
    "customer_amount_over_mean_30d": 1.0,
    "terminal_nb_tx_1d": 1.0, "terminal_nb_tx_7d": 8.0, "terminal_nb_tx_30d": 30.0,
    "terminal_risk_1d": 0.0, "terminal_risk_7d": 0.0, "terminal_risk_30d": 0.0,
    "customer_amount_over_mean_1d": 50.0 / 45.0, "customer_mean_1d_over_mean_30d": 0.9,
    "customer_mean_7d_over_mean_before_7d": 0.96,
    "customer_mean_1d_over_mean_before_14d": 0.9,
}
# One value per rule that makes it, and only it, fire.
TRIGGER = {
    HIGH_AMOUNT: ("amount", 250.0),
    AMOUNT_OVER_MEAN: ("customer_amount_over_mean_30d", 4.5),
    RISKY_TERMINAL: ("terminal_risk_7d", 0.5),
    MANY_TRANSACTIONS: ("customer_nb_tx_1d", 12.0),
}


def row(**changes: float) -> np.ndarray:
    values = dict(QUIET)
    for name, value in changes.items():
        assert name in values, name
        values[name] = value
    return np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)


def matrix(*rows: np.ndarray) -> np.ndarray:
    return np.vstack(rows)


def noisy_or(*weights: float) -> float:
    return 1.0 - float(np.prod([1.0 - w for w in weights]))


def test_quiet_row_fires_nothing() -> None:
    scored = RulesScorer().score(matrix(row()))
    assert scored.scores.tolist() == [0.0]
    assert scored.codes.tolist() == [APPROVE]
    assert scored.reasons == [[]]


@pytest.mark.parametrize(("rule", "code"), [
    (HIGH_AMOUNT, DECLINE),
    (AMOUNT_OVER_MEAN, DECLINE),
    (RISKY_TERMINAL, REVIEW),
    (MANY_TRANSACTIONS, APPROVE),
])
def test_each_rule_alone(rule: str, code: int) -> None:
    feature, value = TRIGGER[rule]
    scored = RulesScorer().score(matrix(row(**{feature: value})))
    assert scored.reasons == [[rule]]
    assert scored.scores[0] == pytest.approx(DEFAULT_WEIGHTS[rule])
    assert scored.codes.tolist() == [code]


def test_an_approval_still_names_the_rule_that_fired() -> None:
    scored = RulesScorer().score(matrix(row(customer_nb_tx_1d=9.0)))
    assert scored.codes.tolist() == [APPROVE]
    assert scored.reasons == [[MANY_TRANSACTIONS]]


@pytest.mark.parametrize(("feature", "at", "above"), [
    ("amount", 220.0, 220.01),  # the simulator: "any amount OVER 220 is fraud"
    ("customer_amount_over_mean_30d", 3.0, 3.001),
    ("terminal_risk_7d", 0.3, 0.31),
    ("customer_nb_tx_1d", 8.0, 9.0),
])
def test_rules_fire_strictly_above_their_threshold(feature: str, at: float,
                                                   above: float) -> None:
    scored = RulesScorer().score(matrix(row(**{feature: at}), row(**{feature: above})))
    assert scored.reasons[0] == []
    assert len(scored.reasons[1]) == 1
    assert scored.scores[0] == 0.0 < scored.scores[1]


def test_other_terminal_windows_do_not_fire_the_terminal_rule() -> None:
    scored = RulesScorer().score(matrix(row(terminal_risk_1d=1.0, terminal_risk_30d=1.0)))
    assert scored.reasons == [[]]


def test_rules_combine_as_noisy_or_strongest_reason_first() -> None:
    every = row(amount=300.0, customer_amount_over_mean_30d=6.0, terminal_risk_7d=0.9,
                customer_nb_tx_1d=15.0)
    terminal_and_velocity = row(terminal_risk_7d=0.9, customer_nb_tx_1d=15.0)
    scored = RulesScorer().score(matrix(every, terminal_and_velocity))
    assert scored.reasons[0] == [HIGH_AMOUNT, AMOUNT_OVER_MEAN, RISKY_TERMINAL,
                                 MANY_TRANSACTIONS]
    assert scored.scores[0] == pytest.approx(noisy_or(*DEFAULT_WEIGHTS.values()))
    assert scored.reasons[1] == [RISKY_TERMINAL, MANY_TRANSACTIONS]
    assert scored.scores[1] == pytest.approx(
        noisy_or(DEFAULT_WEIGHTS[RISKY_TERMINAL], DEFAULT_WEIGHTS[MANY_TRANSACTIONS]))
    assert scored.codes.tolist() == [DECLINE, REVIEW]
    assert np.all((scored.scores >= 0.0) & (scored.scores <= 1.0))


def test_results_land_on_the_right_rows() -> None:
    rows = [row(), row(amount=400.0), row(), row(terminal_risk_7d=1.0), row()]
    scored = RulesScorer().score(matrix(*rows))
    assert scored.reasons == [[], [HIGH_AMOUNT], [], [RISKY_TERMINAL], []]
    assert scored.codes.tolist() == [APPROVE, DECLINE, APPROVE, REVIEW, APPROVE]
    assert scored.scores.shape == (5,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rule", list(TRIGGER))
def test_non_finite_values_never_fire(rule: str, bad: float) -> None:
    feature, _ = TRIGGER[rule]
    scored = RulesScorer().score(matrix(row(**{feature: bad})))
    assert scored.reasons == [[]]
    assert scored.scores.tolist() == [0.0]
    assert scored.codes.tolist() == [APPROVE]


def test_all_nan_row_and_nan_elsewhere() -> None:
    nan_row = np.full(N_FEATURES, np.nan)
    # NaN in the other columns does not stop a rule with a finite value from firing.
    partly = np.full(N_FEATURES, np.inf)
    partly[COLUMN["amount"]] = 500.0
    scored = RulesScorer().score(matrix(nan_row, partly))
    assert np.isfinite(scored.scores).all()
    assert scored.reasons == [[], [HIGH_AMOUNT]]
    assert scored.codes.tolist() == [APPROVE, DECLINE]


def test_input_is_not_modified() -> None:
    m = matrix(row(amount=np.nan), row(amount=300.0))
    before = m.copy()
    RulesScorer().score(m)
    np.testing.assert_array_equal(m, before)


def test_empty_batch() -> None:
    scored = RulesScorer().score(np.empty((0, N_FEATURES)))
    assert scored.scores.shape == (0,) and scored.codes.shape == (0,)
    assert scored.reasons == []


def transactions(amounts: list[float]) -> TransactionBatch:
    n = len(amounts)
    return TransactionBatch(
        [f"c{i}" for i in range(n)], [f"t{i}" for i in range(n)],
        np.full(n, 1_700_000_000_000, dtype=np.int64), np.asarray(amounts, dtype=np.float64),
        np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64))


def test_default_features_give_finite_scores_and_only_the_amount_rule() -> None:
    amounts = [0.01, 35.0, 219.99, 220.0, 220.5, 5_000.0, 99_999.0]
    scored = RulesScorer().score(default_matrix(transactions(amounts)))
    assert np.isfinite(scored.scores).all()
    over = [a > 220.0 for a in amounts]
    assert scored.reasons == [[HIGH_AMOUNT] if o else [] for o in over]
    assert scored.codes.tolist() == [DECLINE if o else APPROVE for o in over]


def test_rule_thresholds_are_parameters() -> None:
    m = matrix(row(amount=150.0), row(customer_amount_over_mean_30d=2.5),
               row(terminal_risk_7d=0.2), row(customer_nb_tx_1d=5.0))
    assert RulesScorer().score(m).reasons == [[], [], [], []]
    custom = RulesScorer(high_amount=100.0, amount_over_mean=2.0, terminal_risk=0.1,
                         daily_count=4)
    assert custom.score(m).reasons == [[HIGH_AMOUNT], [AMOUNT_OVER_MEAN], [RISKY_TERMINAL],
                                       [MANY_TRANSACTIONS]]


def test_weights_and_decision_thresholds_are_parameters() -> None:
    m = matrix(row(customer_nb_tx_1d=12.0), row(terminal_risk_7d=0.5))
    rules = RulesScorer(weights={MANY_TRANSACTIONS: 0.5},
                        thresholds={"review": 0.4, "decline": 0.55})
    scored = rules.score(m)
    assert scored.scores[0] == pytest.approx(0.5)
    assert scored.codes.tolist() == [REVIEW, DECLINE]
    # The reason order follows the weights.
    heavy = RulesScorer(weights={MANY_TRANSACTIONS: 0.99})
    both = heavy.score(matrix(row(customer_nb_tx_1d=12.0, amount=300.0)))
    assert both.reasons == [[MANY_TRANSACTIONS, HIGH_AMOUNT]]


@pytest.mark.parametrize("kwargs", [
    {"weights": {"no_such_rule": 0.5}},
    {"weights": {HIGH_AMOUNT: 1.5}},
    {"weights": {HIGH_AMOUNT: -0.1}},
    {"weights": {HIGH_AMOUNT: float("nan")}},
    {"high_amount": float("nan")},
    {"terminal_risk": float("inf")},
    {"thresholds": {"review": 0.9, "decline": 0.5}},
    {"thresholds": {"review": 0.5, "decline": 1.5}},
])
def test_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RulesScorer(**kwargs)


@pytest.mark.parametrize("shape", [(3, N_FEATURES - 1), (3, N_FEATURES + 1), (N_FEATURES,)])
def test_rejects_a_matrix_of_the_wrong_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="feature matrix"):
        RulesScorer().score(np.zeros(shape))


# --- score_with_fallback -----------------------------------------------------------------

class FakeScorer:
    version = "fake-1"

    def __init__(self, scores: list[float] | None = None,
                 error: Exception | None = None) -> None:
        self.scores, self.error, self.calls = scores, error, 0

    def score(self, matrix: np.ndarray) -> ScoredBatch:
        self.calls += 1
        if self.error is not None:
            raise self.error
        assert self.scores is not None
        scores = np.asarray(self.scores, dtype=np.float64)
        return ScoredBatch(scores, np.zeros(len(scores), dtype=np.int8),
                           [["model"] for _ in scores])


MIXED = matrix(row(), row(amount=300.0), row(terminal_risk_7d=0.8))


def model_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name.startswith("fraudstream.models") and r.levelno == logging.WARNING]


def test_a_working_model_is_used_as_is(caplog: pytest.LogCaptureFixture) -> None:
    model = FakeScorer([0.1, 0.2, 0.3])
    with caplog.at_level(logging.WARNING, logger="fraudstream.models"):
        scored, fell_back = score_with_fallback(model, RulesScorer(), MIXED)
    assert fell_back is False
    assert scored.scores.tolist() == [0.1, 0.2, 0.3]
    assert scored.reasons == [["model"]] * 3
    assert model_warnings(caplog) == []


@pytest.mark.parametrize("model", [
    FakeScorer(error=RuntimeError("tl2cgen: library crashed")),
    FakeScorer(error=ValueError("Input X contains NaN")),
    FakeScorer([0.1, np.nan, 0.3]),
    FakeScorer([np.inf, 0.2, 0.3]),
    FakeScorer([0.1, 0.2]),  # one result short
], ids=["raises-runtime", "raises-value", "nan", "inf", "short"])
def test_a_failing_model_falls_back_to_the_rules(model: FakeScorer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fraudstream.models"):
        scored, fell_back = score_with_fallback(model, RulesScorer(), MIXED)
    assert fell_back is True
    assert model.calls == 1
    expected = RulesScorer().score(MIXED)
    np.testing.assert_array_equal(scored.scores, expected.scores)
    assert scored.codes.tolist() == [APPROVE, DECLINE, REVIEW]
    assert scored.reasons == [[], [HIGH_AMOUNT], [RISKY_TERMINAL]]
    warnings = model_warnings(caplog)
    assert len(warnings) == 1
    assert "rules" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert warnings[0].model_version == "fake-1"


def test_the_warning_says_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fraudstream.models"):
        score_with_fallback(FakeScorer(error=RuntimeError("library crashed")), RulesScorer(),
                            MIXED)
        score_with_fallback(FakeScorer([np.nan, np.nan, 0.3]), RulesScorer(), MIXED)
    first, second = (r.getMessage() for r in model_warnings(caplog))
    assert "RuntimeError" in first and "library crashed" in first
    assert "2 of 3 scores are not finite" in second


def test_a_non_exception_base_error_is_not_swallowed() -> None:
    with pytest.raises(KeyboardInterrupt):
        score_with_fallback(FakeScorer(error=KeyboardInterrupt()), RulesScorer(), MIXED)


# --- with the real Scorer (scikit-learn backend) ---------------------------------------

def sklearn_scorer(tmp_path: Path) -> Scorer:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, N_FEATURES))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    manifest = {
        "version": "test-lr", "feature_names": list(FEATURE_NAMES),
        "thresholds": {"review": 0.5, "decline": 0.9},
        "explain": {"means": [0.0] * N_FEATURES, "stds": [1.0] * N_FEATURES,
                    "importances": [1.0] * N_FEATURES},
    }
    return Scorer(Artifact(tmp_path, manifest, model), FEATURE_NAMES)


def test_real_scorer_raising_on_nan_input_falls_back(tmp_path: Path) -> None:
    scorer = sklearn_scorer(tmp_path)
    m = MIXED.copy()
    m[0, COLUMN["is_night"]] = np.nan  # scikit-learn's LogisticRegression refuses NaN
    with pytest.raises(ValueError):
        scorer.score(m)
    scored, fell_back = score_with_fallback(scorer, RulesScorer(), m)
    assert fell_back is True
    assert scored.reasons == [[], [HIGH_AMOUNT], [RISKY_TERMINAL]]


def test_real_scorer_returning_nan_falls_back(tmp_path: Path) -> None:
    scorer = sklearn_scorer(tmp_path)
    assert score_with_fallback(scorer, RulesScorer(), MIXED)[1] is False
    scorer.artifact.model.coef_[:] = np.nan  # a corrupt model: NaN survives the clip
    assert np.isnan(scorer.score(MIXED).scores).all()
    scored, fell_back = score_with_fallback(scorer, RulesScorer(), MIXED)
    assert fell_back is True
    assert np.isfinite(scored.scores).all()
    assert scored.codes.tolist() == [APPROVE, DECLINE, REVIEW]
