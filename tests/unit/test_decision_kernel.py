"""The compiled decisions (models.decision_kernel) equal their definitions exactly:
np.clip, models.decisions.decide and ReasonExplainer.reasons, ties and all."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fraudstream.models.calibration import Calibration
from fraudstream.models.decision_kernel import BatchDecisions, calibrated
from fraudstream.models.decisions import ReasonExplainer, decide

WIDTH = 5
NAMES = [f"f{j}" for j in range(WIDTH)]
# Few distinct values: ties between features are common, and so are zero distances.
values = st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, 3.0, 1e9, float("nan")])
probabilities = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.5, 0.9, 1.0]))


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(0, 12), data=st.data(),
       review=st.sampled_from([0.3, 0.5]), decline=st.sampled_from([0.5, 0.9]),
       top=st.integers(1, 6))
def test_compiled_decisions_equal_the_definitions(rows: int, data: st.DataObject,
                                                  review: float, decline: float,
                                                  top: int) -> None:
    matrix = data.draw(hnp.arrays(np.float64, (rows, WIDTH), elements=values))
    probs = data.draw(hnp.arrays(np.float64, (rows,), elements=probabilities))
    means = data.draw(hnp.arrays(np.float64, (WIDTH,), elements=values))
    stds = data.draw(hnp.arrays(np.float64, (WIDTH,), elements=st.sampled_from([0.0, 1.0, 2.0])))
    weights = data.draw(hnp.arrays(np.float64, (WIDTH,),
                                   elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0])))
    explainer = ReasonExplainer(NAMES, means, stds, weights, top=top)
    thresholds = {"review": review, "decline": decline}

    scores, codes, reasons = BatchDecisions(thresholds, explainer).apply(probs, matrix)

    expected_scores = np.clip(probs, 0.0, 1.0)
    expected_codes = decide(expected_scores, thresholds)
    assert np.array_equal(scores, expected_scores)
    assert np.array_equal(codes, expected_codes)
    assert reasons == explainer.reasons(matrix, expected_codes)


def test_a_read_only_matrix_is_scored_without_compiling_again() -> None:
    explainer = ReasonExplainer(NAMES, [0.0] * WIDTH, [1.0] * WIDTH, [1.0] * WIDTH)
    matrix = np.arange(10, dtype=np.float64).reshape(2, WIDTH)
    matrix.flags.writeable = False
    _, codes, reasons = BatchDecisions({"review": 0.5, "decline": 0.9}, explainer).apply(
        np.array([0.1, 0.95]), matrix)
    assert codes.tolist() == [0, 2]
    assert reasons == [[], ["f4", "f3", "f2"]]


knots = st.lists(st.floats(1e-6, 1 - 1e-6), min_size=0, max_size=30, unique=True)


@st.composite
def calibrations(draw: st.DrawFn) -> Calibration:
    """A strictly increasing map of [0, 1] with up to 30 interior knots."""
    xs = sorted(draw(knots))
    ys = sorted(draw(st.lists(st.floats(1e-6, 1 - 1e-6), min_size=len(xs),
                              max_size=len(xs), unique=True)))
    return Calibration("isotonic", np.array([0.0, *xs, 1.0]), np.array([0.0, *ys, 1.0]))


@settings(max_examples=300, deadline=None)
@given(calibration=calibrations(), data=st.data())
def test_calibrated_decisions_equal_the_definitions(calibration: Calibration,
                                                    data: st.DataObject) -> None:
    rows = data.draw(st.integers(0, 12))
    probs = data.draw(hnp.arrays(np.float64, (rows,), elements=st.one_of(
        probabilities, st.sampled_from(calibration.scores.tolist()))))
    matrix = np.ones((rows, WIDTH))
    explainer = ReasonExplainer(NAMES, [0.0] * WIDTH, [1.0] * WIDTH, [1.0] * WIDTH)
    thresholds = {"review": 0.3, "decline": 0.6}

    scores, codes, _ = BatchDecisions(thresholds, explainer, calibration).apply(probs, matrix)

    expected = np.clip(calibration.apply(probs), 0.0, 1.0)  # the definition
    assert np.array_equal(scores, expected)
    assert np.array_equal(codes, decide(expected, thresholds))


def test_the_compiled_interpolation_is_numpys_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        xs = np.r_[0.0, np.sort(rng.random(int(rng.integers(0, 40)))), 1.0]
        ys = np.r_[0.0, np.sort(rng.random(xs.size - 2)), 1.0]
        if np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) <= 0):
            continue
        x = np.r_[rng.random(200), xs, -0.1, 1.1, np.nan]
        expected = np.interp(x, xs, ys)
        got = np.array([calibrated(v, xs, ys) for v in x])
        assert np.array_equal(got, expected, equal_nan=True)
