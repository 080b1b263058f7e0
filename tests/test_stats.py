"""Tests of relic_rl.stats against hand-computed values, scipy and (when importable) rliable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from relic_rl import stats

REPS = 200


# --------------------------------------------------------------------------------------------
# IQM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # n = 8: floor(0.25 * 8) = 2 dropped at each end -> mean(3, 4, 5, 6).
        (np.arange(1, 9), 4.5),
        # n = 5: floor(1.25) = 1 dropped at each end -> mean(2, 3, 4); the outlier 100 is gone.
        ([1, 2, 3, 4, 100], 3.0),
        # n = 6: floor(1.5) = 1 -> mean(2, 3, 4, 5), i.e. 4 of 6 kept (more than half).
        ([100, 1, 2, 3, 4, 5], 3.5),
        # n = 7: floor(1.75) = 1 -> mean(1, 2, 3, 4, 5).
        ([0, 1, 2, 3, 4, 5, 1000], 3.0),
        # n = 3: floor(0.75) = 0 -> nothing trimmed, the plain mean.
        ([1, 2, 30], 11.0),
        # n = 1: the value itself.
        ([7.5], 7.5),
        # [runs, tasks] is pooled: the same 8 values as the first case, in another order.
        ([[1, 8], [2, 7], [3, 6], [4, 5]], 4.5),
    ],
)
def test_iqm_hand_computed(scores: Any, expected: float) -> None:
    assert stats.iqm(np.asarray(scores)) == expected


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_matches_scipy_trim_mean(n: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(n).normal(size=n)
    assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25, axis=None), rel=1e-12, abs=1e-15)
    # Dyadic values are summed exactly in any order, so there the match is exact.
    d = np.round(x * 8) / 8
    assert stats.iqm(d) == scipy_stats.trim_mean(d, 0.25, axis=None)


def test_iqm_ignores_order() -> None:
    x = np.random.default_rng(0).normal(size=(6, 3))
    assert stats.iqm(x) == stats.iqm(np.random.default_rng(1).permutation(x.ravel()))


# --------------------------------------------------------------------------------------------
# Stratified bootstrap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", [np.mean, stats.iqm, np.median])
@pytest.mark.parametrize("shape", [(10,), (10, 3)])
def test_bootstrap_ci_contains_point_estimate(statistic: stats.Statistic, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    low, high = stats.stratified_bootstrap_ci(x, statistic, reps=REPS)
    assert low < float(statistic(x)) < high


def test_bootstrap_ci_of_constant_data_is_degenerate() -> None:
    assert stats.stratified_bootstrap_ci(np.full(5, 3.25), stats.iqm, reps=REPS) == (3.25, 3.25)


def test_bootstrap_is_stratified_by_task() -> None:
    # Each task is constant, so resampling runs *within* a task never changes the pooled mean;
    # an unstratified bootstrap over all cells would (it could draw only task-0 cells).
    x = np.column_stack([np.zeros(6), np.full(6, 10.0)])
    assert stats.stratified_bootstrap_ci(x, np.mean, reps=REPS) == (5.0, 5.0)


def test_bootstrap_is_reproducible_with_seed() -> None:
    x = np.random.default_rng(0).normal(size=8)
    a = stats.stratified_bootstrap_ci(x, stats.iqm, reps=REPS, seed=3)
    assert a == stats.stratified_bootstrap_ci(x, stats.iqm, reps=REPS, seed=3)
    assert a != stats.stratified_bootstrap_ci(x, stats.iqm, reps=REPS, seed=4)
    gen = stats.stratified_bootstrap_ci(x, stats.iqm, reps=REPS, seed=np.random.default_rng(3))
    assert gen == a


def test_bootstrap_width_shrinks_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    small = stats.stratified_bootstrap_ci(rng.normal(size=10), np.mean, reps=REPS)
    large = stats.stratified_bootstrap_ci(rng.normal(size=400), np.mean, reps=REPS)
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])


def test_bootstrap_width_grows_with_confidence() -> None:
    x = np.random.default_rng(0).normal(size=20)
    narrow = stats.stratified_bootstrap_ci(x, np.mean, reps=REPS, confidence=0.5)
    wide = stats.stratified_bootstrap_ci(x, np.mean, reps=REPS, confidence=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    # With one task the stratified bootstrap is the ordinary one; only the random draws differ.
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).normal(size=60)
    low, high = stats.stratified_bootstrap_ci(x, np.mean, reps=4000)
    ref = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95, random_state=1
    ).confidence_interval
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.1 * width)
    assert high == pytest.approx(ref.high, abs=0.1 * width)


def test_iqm_and_bootstrap_match_rliable() -> None:
    metrics = pytest.importorskip("rliable.metrics")
    x = np.random.default_rng(0).normal(size=(30, 3))
    assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12)
    d = np.round(x * 4) / 4
    assert stats.iqm(d) == metrics.aggregate_iqm(d)
    # rliable.library needs `arch`; the dev extra pins pandas so that it imports. A failure here
    # is an install problem to fix, not a reason to skip the cross-check.
    from rliable import library as rly

    points, intervals = rly.get_interval_estimates(
        {"a": x},
        lambda s: np.array([metrics.aggregate_iqm(s)]),
        reps=4000,
        random_state=np.random.RandomState(0),
    )
    assert stats.iqm(x) == pytest.approx(points["a"][0], rel=1e-12)
    low, high = stats.stratified_bootstrap_ci(x, stats.iqm, reps=4000)
    width = intervals["a"][1, 0] - intervals["a"][0, 0]
    assert low == pytest.approx(intervals["a"][0, 0], abs=0.1 * width)
    assert high == pytest.approx(intervals["a"][1, 0], abs=0.1 * width)


def test_mean_curve_ci() -> None:
    curves = np.random.default_rng(0).normal(size=(8, 5)) + np.arange(5)
    low, high = stats.mean_curve_ci(curves, reps=REPS)
    assert low.shape == high.shape == (5,)
    assert np.all(low < curves.mean(axis=0)) and np.all(curves.mean(axis=0) < high)
    # Pointwise it is the same distribution as the scalar bootstrap of each column.
    col_low, col_high = stats.stratified_bootstrap_ci(curves[:, 2], np.mean, reps=4000)
    wide_low, wide_high = stats.mean_curve_ci(curves, reps=4000)
    assert wide_low[2] == pytest.approx(col_low, abs=0.1 * (col_high - col_low))
    assert wide_high[2] == pytest.approx(col_high, abs=0.1 * (col_high - col_low))
    flat_low, flat_high = stats.mean_curve_ci(np.ones((3, 4)), reps=REPS)
    np.testing.assert_array_equal(flat_low, np.ones(4))
    np.testing.assert_array_equal(flat_high, np.ones(4))


# --------------------------------------------------------------------------------------------
# Probability of improvement and differences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([5, 6, 7], [1, 2], 1.0),
        ([1, 2], [5, 6, 7], 0.0),
        ([1, 2, 3], [1, 2, 3], 0.5),
        # x=1 beats nobody; x=3 beats both 2s (2 pairs); x=5 beats all 3 -> 5 of 9 pairs.
        ([1, 3, 5], [2, 2, 4], 5 / 9),
        # Ties count one half: x=2 beats 1 and ties twice (1 + 2 * 0.5); x=3 beats all 3 -> 5 of 6.
        ([2, 3], [2, 2, 1], 5 / 6),
    ],
)
def test_probability_of_improvement_hand_cases(x: list[float], y: list[float], expected: float) -> None:
    assert stats.probability_of_improvement(np.array(x), np.array(y)) == pytest.approx(expected)


def test_probability_of_improvement_is_mann_whitney_u() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, size=7), rng.integers(0, 5, size=9)  # integers: plenty of ties
    u = scipy_stats.mannwhitneyu(x, y, alternative="greater").statistic
    assert stats.probability_of_improvement(x, y) == pytest.approx(u / (7 * 9))
    assert stats.probability_of_improvement(x, y) + stats.probability_of_improvement(y, x) == pytest.approx(1)


def test_probability_of_improvement_averages_tasks_like_rliable() -> None:
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]])
    assert stats.probability_of_improvement(x, y) == 0.5  # task 0: 1, task 1: 0
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)) + 0.5
    assert stats.probability_of_improvement(a, b) == pytest.approx(metrics.probability_of_improvement(a, b))


def test_probability_of_improvement_ci() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.5, 1, size=10), rng.normal(0, 1, size=12)
    low, high = stats.probability_of_improvement_ci(x, y, reps=REPS)
    assert 0 <= low < stats.probability_of_improvement(x, y) < high <= 1
    assert stats.probability_of_improvement_ci([5, 6], [1, 2, 3], reps=REPS) == (1.0, 1.0)
    assert (low, high) == stats.probability_of_improvement_ci(x, y, reps=REPS)


def test_difference_ci() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(1, 1, size=8), rng.normal(0, 1, size=5)
    est = stats.difference_ci(x, y, reps=REPS)
    assert isinstance(est, stats.IntervalEstimate)
    assert est.point == pytest.approx(x.mean() - y.mean())
    assert est.low < est.point < est.high
    assert est == stats.difference_ci(x, y, reps=REPS)
    iqm_est = stats.difference_ci(x, y, stats.iqm, reps=REPS)
    assert iqm_est.point == pytest.approx(stats.iqm(x) - stats.iqm(y))
    assert stats.difference_ci([3.0, 3.0], [1.0, 1.0, 1.0], reps=REPS) == (2.0, 2.0, 2.0)


# --------------------------------------------------------------------------------------------
# Area under the curve
# --------------------------------------------------------------------------------------------


def test_area_under_curve_hand_example() -> None:
    # Trapezoids: 10 * (0 + 10) / 2 + 20 * (10 + 10) / 2 = 250 over a span of 30.
    assert stats.area_under_curve([0, 10, 30], [0, 10, 10]) == pytest.approx(250 / 30)
    # Offsetting the start changes nothing; a constant curve averages to the constant.
    assert stats.area_under_curve([100, 110, 130], [0, 10, 10]) == pytest.approx(250 / 30)
    assert stats.area_under_curve([1, 2, 5], [4, 4, 4]) == 4
    assert stats.area_under_curve([0, 10], [0, 8]) == 4


def test_area_under_curve_single_point() -> None:
    assert stats.area_under_curve([500], [12.5]) == 12.5


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _bad_statistic(x: np.ndarray) -> Any:
    return x  # not a scalar


GOOD = np.arange(4.0)
CASES: list[tuple[str, Callable[[], object], str]] = [
    ("iqm empty", lambda: stats.iqm(np.array([])), "empty"),
    ("iqm nan", lambda: stats.iqm(np.array([1.0, np.nan])), "NaN"),
    ("iqm inf", lambda: stats.iqm(np.array([1.0, np.inf])), "infinite"),
    ("iqm text", lambda: stats.iqm(np.array(["a"])), "numbers"),
    ("ci empty", lambda: stats.stratified_bootstrap_ci(np.empty((0, 2)), np.mean), "empty"),
    ("ci nan", lambda: stats.stratified_bootstrap_ci([1.0, np.nan], np.mean), "NaN"),
    ("ci 3-D", lambda: stats.stratified_bootstrap_ci(np.ones((2, 2, 2)), np.mean), "shape"),
    ("ci reps 0", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, reps=0), "reps"),
    ("ci reps float", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, reps=2.5), "reps"),  # type: ignore[arg-type]
    ("ci reps bool", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, reps=True), "reps"),
    ("ci conf 0", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, confidence=0.0), "confidence"),
    ("ci conf 1", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, confidence=1.0), "confidence"),
    ("ci conf 95", lambda: stats.stratified_bootstrap_ci(GOOD, np.mean, confidence=95), "confidence"),
    ("ci bad statistic", lambda: stats.stratified_bootstrap_ci(GOOD, _bad_statistic, reps=2), "scalar"),
    ("poi empty", lambda: stats.probability_of_improvement([], GOOD), "empty"),
    ("poi nan", lambda: stats.probability_of_improvement(GOOD, [np.nan]), "NaN"),
    ("poi tasks", lambda: stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3))), "tasks"),
    ("poi ndim", lambda: stats.probability_of_improvement(np.ones((3, 1)), np.ones(3)), "tasks"),
    ("poi ci reps", lambda: stats.probability_of_improvement_ci(GOOD, GOOD, reps=0), "reps"),
    ("poi ci conf", lambda: stats.probability_of_improvement_ci(GOOD, GOOD, confidence=-0.1), "confidence"),
    ("poi ci tasks", lambda: stats.probability_of_improvement_ci(np.ones((3, 2)), GOOD), "tasks"),
    ("diff empty", lambda: stats.difference_ci(GOOD, []), "empty"),
    ("diff nan", lambda: stats.difference_ci([np.nan], GOOD), "NaN"),
    ("diff tasks", lambda: stats.difference_ci(np.ones((3, 2)), np.ones((2, 4))), "tasks"),
    ("diff reps", lambda: stats.difference_ci(GOOD, GOOD, reps=-1), "reps"),
    ("diff conf", lambda: stats.difference_ci(GOOD, GOOD, confidence=1.5), "confidence"),
    ("curve 1-D", lambda: stats.mean_curve_ci(GOOD), "shape"),
    ("curve nan", lambda: stats.mean_curve_ci(np.full((2, 2), np.nan)), "NaN"),
    ("curve reps", lambda: stats.mean_curve_ci(np.ones((2, 2)), reps=0), "reps"),
    ("auc empty", lambda: stats.area_under_curve([], []), "empty"),
    ("auc nan", lambda: stats.area_under_curve([0, 1], [0, np.nan]), "NaN"),
    ("auc lengths", lambda: stats.area_under_curve([0, 1, 2], [0, 1]), "same length"),
    ("auc 2-D", lambda: stats.area_under_curve(np.ones((2, 2)), np.ones((2, 2))), "shape"),
    ("auc order", lambda: stats.area_under_curve([0, 2, 1], [0, 1, 2]), "increasing"),
    ("auc repeat", lambda: stats.area_under_curve([0, 1, 1], [0, 1, 2]), "increasing"),
]


@pytest.mark.parametrize(("call", "match"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_input_raises_value_error(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
