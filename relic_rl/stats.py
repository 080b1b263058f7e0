"""Aggregate statistics for comparing RL agents over a handful of seeds (plain numpy, no torch).

Definitions follow Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the Statistical
Precipice", the paper behind ``rliable``: the IQM is the 25% trimmed mean of all scores pooled;
intervals are stratified percentile bootstrap intervals (runs resampled within each task); the
probability of improvement is ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs, averaged over tasks.

``scores`` are ``[runs]`` or ``[runs, tasks]``; ``x`` is the candidate's, ``y`` the reference's (runs
may differ in number, tasks not). Bootstrap functions take ``reps``, ``confidence`` in ``(0, 1)`` and
``seed`` (int or ``Generator``; same seed, same interval). Everything raises ``ValueError`` on empty,
non-finite or wrongly shaped scores, on ``x`` and ``y`` with different tasks, and on a bad ``reps`` or
``confidence``.
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
    """The statistic on the observed data, with a confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float


def _as_scores(x: ArrayLike, name: str, *, ndims: tuple[int, ...] | None = (1, 2)) -> FloatArray:
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


def _as_pair(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs, ys = _as_scores(x, "x"), _as_scores(y, "y")
    if xs.ndim != ys.ndim or xs.shape[1:] != ys.shape[1:]:
        raise ValueError(
            f"`x` and `y` must both be [runs] or both [runs, tasks] with the same number of tasks, "
            f"got shapes {xs.shape} and {ys.shape}."
        )
    return xs, ys


def _checked_rng(reps: int, confidence: float, seed: Seed) -> np.random.Generator:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"`reps` must be an integer >= 1 (2000 or more for a paper), got {reps!r}.")
    number = isinstance(confidence, (int, float, np.floating)) and not isinstance(confidence, bool)
    if not (number and 0.0 < confidence < 1.0):
        raise ValueError(
            f"`confidence` must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _scalar(value: SupportsFloat, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: the statistic must return a scalar, got {value!r}.") from err


def iqm(x: ArrayLike) -> float:
    """Interquartile mean of all scores (any shape, flattened), as ``rliable.metrics.aggregate_iqm``.

    Equals ``scipy.stats.trim_mean(x, 0.25, axis=None)`` to rounding: ``floor(0.25 * n)`` sorted scores
    are dropped at each end (``n <= 3``: the mean).
    """
    flat = np.sort(_as_scores(x, "x", ndims=None).ravel())
    cut = int(0.25 * flat.size)
    return float(np.mean(flat[cut : flat.size - cut]))


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs (Mann-Whitney U / ``n m``), averaged over tasks.

    0.5 means no difference.
    """
    return _poi(*_as_pair(x, y))


def _poi(x: FloatArray, y: FloatArray) -> float:
    x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def area_under_curve(timesteps: ArrayLike, returns: ArrayLike) -> float:
    """Trapezoidal area under a learning curve divided by its time span: the average return.

    In return units, so that runs with different evaluation grids compare; one point gives its return.

    :param timesteps: ``[points]``, strictly increasing.
    :param returns: mean evaluation return at each timestep ``[points]``.
    :raises ValueError: also on different lengths or non-increasing timesteps.
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


def _resample(scores: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Runs drawn with replacement independently per task."""
    return np.take_along_axis(scores, rng.integers(0, scores.shape[0], size=scores.shape), axis=0)


def _percentiles(samples: FloatArray, confidence: float, axis: int | None = None) -> FloatArray:
    alpha = 1.0 - confidence
    return np.asarray(
        np.percentile(samples, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)], axis=axis), np.float64
    )


def _bootstrap(replicate: Callable[[], float], reps: int, confidence: float) -> tuple[float, float]:
    low, high = _percentiles(np.array([replicate() for _ in range(reps)], dtype=np.float64), confidence)
    return float(low), float(high)


def stratified_bootstrap_ci(
    scores: ArrayLike, statistic: Statistic, *, reps: int = 2000, confidence: float = 0.95, seed: Seed = 0
) -> tuple[float, float]:
    """Stratified percentile-bootstrap interval ``(low, high)`` of ``statistic(scores)``.

    The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles, as rliable's default; with
    fewer than ~5 runs it under-covers, so report the number of runs next to it.

    :param statistic: maps a score array (same shape as ``scores``) to a scalar, e.g. :func:`iqm`.
    """
    arr = _as_scores(scores, "scores")
    rng = _checked_rng(reps, confidence, seed)
    return _bootstrap(
        lambda: _scalar(statistic(_resample(arr, rng)), "stratified_bootstrap_ci"), reps, confidence
    )


def difference_ci(
    x: ArrayLike,
    y: ArrayLike,
    statistic: Statistic = np.mean,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> IntervalEstimate:
    """``statistic(x) - statistic(y)`` with a percentile-bootstrap interval; positive: ``x`` is better.

    ``x`` and ``y`` are independent samples, resampled independently (stratified by task).
    """
    xs, ys = _as_pair(x, y)
    rng = _checked_rng(reps, confidence, seed)

    def diff(a: FloatArray, b: FloatArray) -> float:
        return _scalar(statistic(a), "difference_ci") - _scalar(statistic(b), "difference_ci")

    return IntervalEstimate(
        diff(xs, ys), *_bootstrap(lambda: diff(_resample(xs, rng), _resample(ys, rng)), reps, confidence)
    )


def probability_of_improvement_ci(
    x: ArrayLike, y: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: Seed = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(low, high)`` of :func:`probability_of_improvement`.

    ``x`` and ``y`` are resampled independently, as rliable's ``StratifiedIndependentBootstrap``.
    """
    xs, ys = _as_pair(x, y)
    rng = _checked_rng(reps, confidence, seed)
    return _bootstrap(lambda: _poi(_resample(xs, rng), _resample(ys, rng)), reps, confidence)


def mean_curve_ci(
    curves: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: Seed = 0
) -> tuple[FloatArray, FloatArray]:
    """Pointwise percentile-bootstrap interval ``(low [points], high [points])`` of the mean curve.

    Whole curves are resampled: the same marginal interval at each point, in one vectorised draw.

    :param curves: returns ``[runs, points]`` on common timesteps.
    """
    arr = _as_scores(curves, "curves", ndims=(2,))
    rng = _checked_rng(reps, confidence, seed)
    n_runs = arr.shape[0]
    # Chunks bound the memory (chunk * runs * points floats).
    chunk = max(1, min(reps, 2**22 // max(1, arr.size)))
    means = np.empty((reps, arr.shape[1]))
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        idx = rng.integers(0, n_runs, size=(stop - start, n_runs))
        means[start:stop] = arr[idx].mean(axis=1)
    low, high = _percentiles(means, confidence, axis=0)
    return low, high
