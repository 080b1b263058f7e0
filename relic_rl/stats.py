"""Aggregate statistics for comparing RL agents over a handful of seeds.

The definitions follow Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of
the Statistical Precipice" (NeurIPS), the paper behind the ``rliable`` library:

* the **interquartile mean** (IQM) is the 25% trimmed mean of all scores pooled together,
  i.e. exactly ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` (see :func:`iqm`);
* confidence intervals are **stratified percentile bootstrap** intervals: runs are resampled
  with replacement independently within each task (see :func:`stratified_bootstrap_ci`);
* the **probability of improvement** is ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs,
  i.e. the Mann-Whitney U statistic divided by ``n * m`` and averaged over tasks
  (see :func:`probability_of_improvement`).

Everything here is plain numpy so that it can be tested against closed-form values and used
without Stable-Baselines3 or torch. ``scores`` arrays are ``[runs]`` (one task) or
``[runs, tasks]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, SupportsFloat

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "IntervalEstimate",
    "Statistic",
    "area_under_curve",
    "difference_ci",
    "iqm",
    "mean_curve_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
]

#: A statistic maps a score array (same number of dimensions as the input scores) to a scalar.
Statistic = Callable[[NDArray[np.float64]], SupportsFloat]
FloatArray = NDArray[np.float64]
Seed = int | np.random.Generator


class IntervalEstimate(NamedTuple):
    """A point estimate with a confidence interval ``[low, high]``.

    :param point: the statistic on the observed data.
    :param low: lower end of the confidence interval.
    :param high: upper end of the confidence interval.
    """

    point: float
    low: float
    high: float


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _as_scores(x: ArrayLike, name: str, *, ndims: tuple[int, ...] | None = (1, 2)) -> FloatArray:
    """Convert ``x`` to a float array and reject empty, non-finite or wrongly shaped input."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be an array of numbers: {err}") from err
    if ndims is not None and arr.ndim not in ndims:
        shapes = " or ".join({1: "[runs]", 2: "[runs, tasks]"}.get(d, f"{d}-D") for d in ndims)
        raise ValueError(f"`{name}` must have shape {shapes}, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); at least one score is needed.")
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` contains NaN; drop or impute missing scores before aggregating.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains infinite values; scores must be finite.")
    return arr


def _check_bootstrap_args(reps: int, confidence: float) -> None:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"`reps` must be an integer >= 1 (2000 or more for a paper), got {reps!r}.")
    if isinstance(confidence, bool) or not (
        isinstance(confidence, (int, float, np.floating)) and 0.0 < confidence < 1.0
    ):
        raise ValueError(
            f"`confidence` must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )


def _check_same_tasks(x: FloatArray, y: FloatArray) -> None:
    # Different numbers of runs are fine (the two samples are independent); the tasks are not.
    if x.ndim != y.ndim or x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"`x` and `y` must both be [runs] or both [runs, tasks] with the same number of tasks, "
            f"got shapes {x.shape} and {y.shape}."
        )


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Point statistics
# --------------------------------------------------------------------------------------------


def iqm(x: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores, pooled over runs and tasks.

    Defined exactly as ``rliable.metrics.aggregate_iqm``, i.e. ``scipy.stats.trim_mean(x, 0.25,
    axis=None)``: with ``n`` scores sorted ascending, ``k = floor(0.25 * n)`` scores are dropped
    at *each* end and the remaining ``n - 2k`` are averaged. When ``n`` is not a multiple of 4
    this keeps slightly more than half of the scores (``n = 5, 6, 7`` keep 3, 4, 5) and for
    ``n <= 3`` nothing is trimmed (the IQM is the mean). The kept scores are the same as scipy's;
    only the summation order may differ, so results agree to rounding (exactly for dyadic values).

    :param x: scores of any shape; they are flattened.
    :return: the interquartile mean.
    :raises ValueError: on empty or non-finite input.
    """
    flat = np.sort(_as_scores(x, "x", ndims=None).ravel())
    cut = int(0.25 * flat.size)
    return float(np.mean(flat[cut : flat.size - cut]))


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """Probability that a run of ``X`` scores higher than a run of ``Y``, ties counting one half.

    For one task this is ``P(X > Y) + 0.5 * P(X = Y)`` over all ``n * m`` pairs of runs, i.e. the
    Mann-Whitney U statistic of ``x`` divided by ``n * m``. For ``[runs, tasks]`` scores the
    per-task probabilities are averaged, as in Agarwal et al. (2021).

    :param x: scores of the candidate, ``[n]`` or ``[n, tasks]``.
    :param y: scores of the reference, ``[m]`` or ``[m, tasks]``.
    :return: a probability in ``[0, 1]``; 0.5 means no difference.
    :raises ValueError: on empty or non-finite input or a different number of tasks.
    """
    xs = _as_scores(x, "x")
    ys = _as_scores(y, "y")
    _check_same_tasks(xs, ys)
    return _poi(xs.reshape(xs.shape[0], -1), ys.reshape(ys.shape[0], -1))


def _poi(x: FloatArray, y: FloatArray) -> float:
    # [n, 1, tasks] vs [1, m, tasks] -> [n, m, tasks]: every pair of runs within each task.
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def area_under_curve(timesteps: ArrayLike, returns: ArrayLike) -> float:
    """Area under a learning curve divided by its time span: the average return over training.

    ``sum_i (t[i+1] - t[i]) * (r[i] + r[i+1]) / 2 / (t[-1] - t[0])`` (trapezoid rule). Dividing by
    the span makes the value read in return units (a flat curve at ``c`` gives ``c``) and makes
    runs with different evaluation grids comparable as long as they span the same budget.
    A single evaluation point has no span; its return is returned as is.

    :param timesteps: evaluation timesteps ``[points]``, strictly increasing.
    :param returns: mean evaluation return at each timestep ``[points]``.
    :return: the time-averaged return.
    :raises ValueError: on empty or non-finite input, different lengths or non-increasing timesteps.
    """
    t = _as_scores(timesteps, "timesteps", ndims=(1,))
    r = _as_scores(returns, "returns", ndims=(1,))
    if t.shape != r.shape:
        raise ValueError(f"`timesteps` and `returns` must have the same length, got {t.size} and {r.size}.")
    if t.size == 1:
        return float(r[0])
    dt = np.diff(t)
    if (dt <= 0).any():
        raise ValueError("`timesteps` must be strictly increasing.")
    return float(np.sum(dt * (r[1:] + r[:-1]) / 2.0) / (t[-1] - t[0]))


# --------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------


def _resample(scores: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One stratified bootstrap sample: runs drawn with replacement independently per task."""
    if scores.ndim == 1:
        return scores[rng.integers(0, scores.shape[0], size=scores.shape[0])]
    idx = rng.integers(0, scores.shape[0], size=scores.shape)
    return np.take_along_axis(scores, idx, axis=0)


def _percentile_interval(samples: FloatArray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.percentile(samples, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(low), float(high)


def _scalar(value: SupportsFloat, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: the statistic must return a scalar, got {value!r}.") from err
    return out


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Statistic,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[float, float]:
    """Stratified percentile-bootstrap confidence interval of ``statistic(scores)``.

    Each of the ``reps`` replicates redraws, for every task independently, as many runs as there
    are with replacement from that task's runs, then evaluates ``statistic`` on the resampled
    array (same shape as ``scores``). The interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` percentiles of the replicates (numpy's linear interpolation), as in
    rliable's default ``method="percentile"``. With very few runs (fewer than ~5) the percentile
    bootstrap is known to under-cover; report the number of runs next to the interval.

    :param scores: ``[runs]`` or ``[runs, tasks]``.
    :param statistic: maps a score array to a scalar, e.g. :func:`iqm` or ``np.mean``.
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the interval, in ``(0, 1)``.
    :param seed: seed (or generator) for the resampling; the same seed gives the same interval.
    :return: ``(low, high)``.
    :raises ValueError: on empty or non-finite scores, a bad shape, ``reps < 1`` or a bad ``confidence``.
    """
    arr = _as_scores(scores, "scores")
    _check_bootstrap_args(reps, confidence)
    rng = _rng(seed)
    samples = np.empty(reps)
    for i in range(reps):
        samples[i] = _scalar(statistic(_resample(arr, rng)), "stratified_bootstrap_ci")
    return _percentile_interval(samples, confidence)


def difference_ci(
    x: ArrayLike,
    y: ArrayLike,
    statistic: Statistic = np.mean,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> IntervalEstimate:
    """``statistic(x) - statistic(y)`` with a percentile-bootstrap confidence interval.

    ``x`` and ``y`` are independent samples (e.g. two variants trained on different seeds), so
    each replicate resamples them independently (and stratified by task).

    :param x: scores of the candidate, ``[n]`` or ``[n, tasks]``.
    :param y: scores of the reference, ``[m]`` or ``[m, tasks]``.
    :param statistic: aggregate applied to each sample, ``np.mean`` by default.
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the interval, in ``(0, 1)``.
    :param seed: seed (or generator) for the resampling.
    :return: the point difference and its interval; positive means ``x`` is better.
    :raises ValueError: on empty or non-finite input, a different number of tasks, ``reps < 1``
        or a bad ``confidence``.
    """
    xs = _as_scores(x, "x")
    ys = _as_scores(y, "y")
    _check_same_tasks(xs, ys)
    _check_bootstrap_args(reps, confidence)
    where = "difference_ci"
    point = _scalar(statistic(xs), where) - _scalar(statistic(ys), where)
    rng = _rng(seed)
    samples = np.empty(reps)
    for i in range(reps):
        samples[i] = _scalar(statistic(_resample(xs, rng)), where) - _scalar(
            statistic(_resample(ys, rng)), where
        )
    return IntervalEstimate(point, *_percentile_interval(samples, confidence))


def probability_of_improvement_ci(
    x: ArrayLike,
    y: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of :func:`probability_of_improvement`.

    ``x`` and ``y`` are resampled independently (stratified by task) in every replicate, as
    rliable's ``StratifiedIndependentBootstrap`` does.

    :param x: scores of the candidate, ``[n]`` or ``[n, tasks]``.
    :param y: scores of the reference, ``[m]`` or ``[m, tasks]``.
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the interval, in ``(0, 1)``.
    :param seed: seed (or generator) for the resampling.
    :return: ``(low, high)``.
    :raises ValueError: as :func:`difference_ci`.
    """
    xs = _as_scores(x, "x")
    ys = _as_scores(y, "y")
    _check_same_tasks(xs, ys)
    _check_bootstrap_args(reps, confidence)
    xs = xs.reshape(xs.shape[0], -1)
    ys = ys.reshape(ys.shape[0], -1)
    rng = _rng(seed)
    samples = np.empty(reps)
    for i in range(reps):
        samples[i] = _poi(_resample(xs, rng), _resample(ys, rng))
    return _percentile_interval(samples, confidence)


def mean_curve_ci(
    curves: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[FloatArray, FloatArray]:
    """Pointwise percentile-bootstrap interval of the mean learning curve across runs.

    ``curves`` is ``[runs, points]`` (every run evaluated on the same timesteps). Each replicate
    draws runs (whole curves) with replacement and averages them; the band at each point is the
    percentile interval of those averages. Drawing whole curves rather than each point separately
    gives the same interval at every point (the marginal distribution is identical) with one
    vectorised draw.

    :param curves: returns ``[runs, points]``.
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the interval, in ``(0, 1)``.
    :param seed: seed (or generator) for the resampling.
    :return: ``(low, high)``, each ``[points]``.
    :raises ValueError: on empty or non-finite input, a non-2-D array, ``reps < 1`` or a bad ``confidence``.
    """
    arr = _as_scores(curves, "curves", ndims=(2,))
    _check_bootstrap_args(reps, confidence)
    rng = _rng(seed)
    n_runs = arr.shape[0]
    # Chunk the replicates so that memory stays bounded (reps * runs * points floats per chunk).
    chunk = max(1, min(reps, 2**22 // max(1, arr.size)))
    means = np.empty((reps, arr.shape[1]))
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        idx = rng.integers(0, n_runs, size=(stop - start, n_runs))
        means[start:stop] = arr[idx].mean(axis=1)  # [chunk, runs, points] -> [chunk, points]
    alpha = 1.0 - confidence
    low, high = np.percentile(means, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)], axis=0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
