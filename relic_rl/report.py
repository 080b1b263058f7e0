"""Turn an ablation folder into a table, a Markdown summary and learning-curve figures.

An ablation folder ``ABL/`` (written by the ablation CLI) looks like::

      ablation.yaml             env_id, total_timesteps, seeds, grid, baseline[, command]
      runs/<cell>/cell.yaml     variant, params, seed
      runs/<cell>/evaluations.csv              timesteps,mean_reward,std_reward,episode_rewards
      runs/<cell>/evaluations_randomized.csv   (optional) same columns, domain-randomized env
      runs/<cell>/status.yaml   state: finished | running | failed | interrupted

:func:`write_report` writes ``results.csv``, ``summary.md``, ``curves.png`` and ``curves.pdf``
into it, with the statistics of :mod:`relic_rl.stats`. Runs without evaluations are skipped and
listed as warnings in the summary.

Command line: ``python -m relic_rl.report ABLATION_DIR [--reps N] [--seed S] [--out-dir DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray

from relic_rl import stats
from relic_rl.cli_types import int_at_least
from relic_rl.errors import UserError
from relic_rl.run_files import CELL_FILE, EVAL_FILE, RANDOMIZED_EVAL_FILE, STATUS_FILE, read_evaluation_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "Ablation",
    "Comparison",
    "EvalCurve",
    "ReportError",
    "ReportPaths",
    "RunRecord",
    "SkippedRun",
    "Variant",
    "VariantSummary",
    "load_ablation",
    "main",
    "plot_curves",
    "read_evaluations",
    "summarize",
    "write_report",
]

KL_KEY = "kl_weight"
AUX_KEY = "aux"
CONFIDENCE = 0.95
#: Fewer usable seeds get no interval: a bootstrap over one or two runs would only restate them.
MIN_SEEDS_FOR_INTERVAL = 3
REQUIRED_KEYS = ("env_id", "total_timesteps", "seeds", "grid")
EXPECTED_LAYOUT = (
    "An ablation folder (as written by the ablation CLI) contains `ablation.yaml` (a mapping with "
    "env_id, total_timesteps, seeds, grid and baseline) and `runs/<cell>/` sub-folders, each with "
    "`cell.yaml` (variant, params, seed), `evaluations.csv` and `status.yaml`."
)
_REPORT_FILES = ("results.csv", "summary.md", "curves.png", "curves.pdf")

FloatArray = NDArray[np.float64]
ComparisonKind = Literal["kl", "baseline", "curl"]


class ReportError(UserError):
    """The folder cannot be reported on (not an ablation folder, nothing evaluated yet, ...)."""


@dataclass(frozen=True)
class EvalCurve:
    """Evaluations of one run: strictly increasing timesteps and mean returns, both ``[points]``, and
    the episodes per evaluation (the most any row holds; 0 when the file does not say)."""

    timesteps: FloatArray
    mean_returns: FloatArray
    episodes: int = 0

    @property
    def final_return(self) -> float:
        """The run's final score: the mean return at the last evaluation."""
        return float(self.mean_returns[-1])

    @property
    def final_timestep(self) -> int:
        return int(self.timesteps[-1])

    def as_dict(self) -> dict[int, float]:
        """``{timestep: mean_return}``."""
        return {int(t): float(r) for t, r in zip(self.timesteps, self.mean_returns, strict=True)}


@dataclass(frozen=True)
class RunRecord:
    """One usable run under ``runs/<name>``: ``variant``, ``params`` and ``seed`` from ``cell.yaml``,
    ``state`` from ``status.yaml`` (``"unknown"`` when absent), and its evaluations (``randomized``:
    on the domain-randomized env, when present)."""

    name: str
    path: Path
    variant: str
    params: dict[str, Any]
    seed: int
    state: str
    evaluation: EvalCurve
    randomized: EvalCurve | None


@dataclass(frozen=True)
class SkippedRun:
    """A run folder that could not be used, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Variant:
    """The runs of one configuration, by seed; ``label`` is their ``variant``, made unique if needed."""

    label: str
    params: dict[str, Any]
    runs: tuple[RunRecord, ...]

    @property
    def aux(self) -> str:
        """The auxiliary loss: ``"relic"`` (also when not recorded), ``"curl"`` or ``"none"``."""
        return str(self.params.get(AUX_KEY, "relic")).lower()

    @property
    def is_baseline(self) -> bool:
        return self.aux == "none"

    @property
    def kl_weight(self) -> float | None:
        """The KL weight as a float; ``None`` without ReLIC or when it is not a parameter."""
        return _as_float(self.params.get(KL_KEY)) if self.aux == "relic" else None

    @property
    def final_scores(self) -> FloatArray:
        """Final score of each run ``[runs]``."""
        return np.array([r.evaluation.final_return for r in self.runs])


@dataclass(frozen=True)
class Ablation:
    """An ablation folder as loaded by :func:`load_ablation`, with ``ablation.yaml``'s settings.

    ``runs`` have at least one evaluation; ``skipped`` are the others, with the reason; ``warnings``
    list other problems (unfinished runs, unreadable files).
    """

    path: Path
    env_id: str
    total_timesteps: int
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    baseline: bool
    command: str | None
    runs: tuple[RunRecord, ...]
    skipped: tuple[SkippedRun, ...]
    warnings: tuple[str, ...]

    @property
    def has_randomized(self) -> bool:
        return any(r.randomized is not None for r in self.runs)

    def variants(self) -> list[Variant]:
        """Group the runs by variant: ReLIC in grid order, then CURL, the baseline last."""
        groups: dict[tuple[str, str], list[RunRecord]] = {}
        for run in self.runs:
            key = repr(sorted((str(k), repr(v)) for k, v in run.params.items()))
            groups.setdefault((run.variant, key), []).append(run)
        names = [name for name, _ in groups]
        variants = []
        for (name, _), runs in groups.items():
            params = runs[0].params
            unique = ", ".join(f"{k}={v}" for k, v in params.items())
            label = f"{name} ({unique})" if names.count(name) > 1 else name
            variants.append(Variant(label, params, tuple(sorted(runs, key=lambda r: r.seed))))
        return sorted(variants, key=self._order)

    def _order(self, variant: Variant) -> tuple[int, tuple[int, ...], str]:
        positions = tuple(
            values.index(value) if (value := variant.params.get(key)) in values else len(values)
            for key, values in self.grid.items()
        )
        return {"relic": 0, "curl": 1, "none": 2}.get(variant.aux, 1), positions, variant.label


def _as_float(value: Any) -> float | None:
    """``value`` as a finite float (YAML reads ``1e-3`` as a string), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def read_evaluations(path: Path) -> EvalCurve:
    """Read an ``evaluations.csv`` file (header ``timesteps,mean_reward,std_reward,episode_rewards``).

    :raises ValueError: on an empty file, missing columns, an unparsable or non-finite value, or
        timesteps that are not strictly increasing.
    """
    header, rows = read_evaluation_table(path)
    if not header:
        raise ValueError(f"{path.name} is empty")
    missing = {"timesteps", "mean_reward"} - set(header)
    if missing:
        raise ValueError(f"{path.name} lacks the column(s) {sorted(missing)}")
    points: list[tuple[float, float]] = []
    episodes = 0
    for line, row in enumerate(rows, start=2):
        episodes = max(episodes, len((row.get("episode_rewards") or "").split()))
        try:
            t, r = float(row["timesteps"]), float(row["mean_reward"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path.name} line {line}: cannot parse {row!r}") from err
        if not (math.isfinite(t) and math.isfinite(r)):
            raise ValueError(f"{path.name} line {line}: non-finite value in {row!r}")
        points.append((t, r))
    if not points:
        raise ValueError(f"{path.name} has no evaluation rows")
    timesteps, returns = np.array(points).T
    if (np.diff(timesteps) <= 0).any():
        raise ValueError(f"{path.name}: timesteps are not strictly increasing")
    return EvalCurve(timesteps, returns, episodes)


def _load_run(run_dir: Path) -> tuple[RunRecord | SkippedRun, list[str]]:
    """Load one run folder; a broken run is skipped with a reason, never raised."""
    name = run_dir.name
    warnings: list[str] = []
    if not (run_dir / CELL_FILE).is_file():
        return SkippedRun(name, "no cell.yaml"), warnings
    try:
        cell = _read_yaml(run_dir / CELL_FILE)
    except (OSError, yaml.YAMLError) as err:
        return SkippedRun(name, f"cell.yaml is unreadable ({err})"), warnings
    if not isinstance(cell, dict) or not {"variant", "params", "seed"} <= set(cell):
        return SkippedRun(name, "cell.yaml lacks variant/params/seed"), warnings
    params, seed = cell["params"], cell["seed"]
    if not isinstance(params, dict) or isinstance(seed, bool) or not isinstance(seed, int):
        return SkippedRun(name, "cell.yaml: params must be a mapping and seed an integer"), warnings
    state = "unknown"
    if (run_dir / STATUS_FILE).is_file():
        try:
            status = _read_yaml(run_dir / STATUS_FILE)
            if isinstance(status, dict) and "state" in status:
                state = str(status["state"])
        except (OSError, yaml.YAMLError) as err:
            warnings.append(f"`{name}`: status.yaml is unreadable ({err}).")
    if not (run_dir / EVAL_FILE).is_file():
        return SkippedRun(name, f"no {EVAL_FILE} (state: {state})"), warnings
    try:
        evaluation = read_evaluations(run_dir / EVAL_FILE)
    except (OSError, ValueError) as err:
        return SkippedRun(name, f"{err} (state: {state})"), warnings
    randomized = None
    if (run_dir / RANDOMIZED_EVAL_FILE).is_file():
        try:
            randomized = read_evaluations(run_dir / RANDOMIZED_EVAL_FILE)
        except (OSError, ValueError) as err:
            # The in-distribution results are still valid.
            warnings.append(f"`{name}`: randomized evaluations ignored: {err}.")
    run = RunRecord(name, run_dir, str(cell["variant"]), params, seed, state, evaluation, randomized)
    return run, warnings


def _check_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ReportError(f"{path} does not hold a YAML mapping. {EXPECTED_LAYOUT}")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ReportError(f"{path} lacks the key(s) {', '.join(missing)}. {EXPECTED_LAYOUT}")
    grid = config["grid"]
    if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        raise ReportError(f"{path}: `grid` must map each parameter to a list of values, got {grid!r}.")
    seeds = config["seeds"]
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ReportError(f"{path}: `seeds` must be a list of integers, got {seeds!r}.")
    return config


def load_ablation(path: Path | str) -> Ablation:
    """Load the ablation folder ``path`` (holding ``ablation.yaml`` and ``runs/``).

    :raises ReportError: when ``path`` is not an ablation folder (with what was expected).
    """
    root = Path(path)
    if not root.exists():
        raise ReportError(f"{root} does not exist. {EXPECTED_LAYOUT}")
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder. {EXPECTED_LAYOUT}")
    config_path = root / "ablation.yaml"
    if not config_path.is_file():
        single = (root / EVAL_FILE).is_file() or (root / CELL_FILE).is_file()
        hint = " It looks like a single training run; pass the ablation folder above it." if single else ""
        raise ReportError(f"{root} is not an ablation folder: no ablation.yaml.{hint} {EXPECTED_LAYOUT}")
    try:
        config = _check_config(_read_yaml(config_path), config_path)
    except yaml.YAMLError as err:
        raise ReportError(f"{config_path} is not valid YAML: {err}") from err
    runs_dir = root / "runs"
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    if not run_dirs:
        raise ReportError(
            f"{root} has no run folders under runs/ (has the ablation been launched?). {EXPECTED_LAYOUT}"
        )
    loaded = [_load_run(run_dir) for run_dir in run_dirs]
    runs = [run for run, _ in loaded if isinstance(run, RunRecord)]
    skipped = [run for run, _ in loaded if isinstance(run, SkippedRun)]
    warnings = [warning for _, run_warnings in loaded for warning in run_warnings]
    if runs:
        # A run that stopped early has its "final" score from an earlier point of training.
        horizon = max(r.evaluation.final_timestep for r in runs)
        warnings += [
            f"`{r.name}` is {r.state}; its last evaluation is at {r.evaluation.final_timestep} "
            f"timesteps (latest of any run: {horizon}), and it is used as its final score."
            for r in runs
            if r.state != "finished" or r.evaluation.final_timestep < horizon
        ]
    env_id, budget, seeds = str(config["env_id"]), int(config["total_timesteps"]), tuple(config["seeds"])
    grid = {str(k): list(v) for k, v in config["grid"].items()}
    command = None if config.get("command") is None else str(config["command"])
    baseline = bool(config.get("baseline", False))
    return Ablation(
        root, env_id, budget, seeds, grid, baseline, command, tuple(runs), tuple(skipped), tuple(warnings)
    )


@dataclass(frozen=True)
class VariantSummary:
    """One variant's final scores ``[runs]``, their mean and IQM with 95% bootstrap CIs, and the mean
    :func:`~relic_rl.stats.area_under_curve` over seeds. ``randomized_final_mean`` is over the
    ``randomized_runs`` runs that have one; ``randomized_ratio`` divides it by the same runs' mean
    in-distribution final score (``None`` unless that is positive)."""

    label: str
    params: dict[str, Any]
    is_baseline: bool
    seeds: tuple[int, ...]
    final_scores: FloatArray
    final_mean: stats.IntervalEstimate
    final_iqm: stats.IntervalEstimate
    auc_mean: float
    randomized_final_mean: float | None
    randomized_runs: int
    randomized_ratio: float | None

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class Comparison:
    """Variant ``treatment`` vs ``control`` (labels) on final scores: mean difference (treatment minus
    control) and P(treatment run > control run), with bootstrap CIs. ``kind``: ``"kl"`` (vs the same
    variant with ``kl_weight = 0``), ``"baseline"`` (vs the no-aux baseline) or ``"curl"`` (ReLIC vs CURL)."""

    kind: ComparisonKind
    treatment: str
    control: str
    mean_difference: stats.IntervalEstimate
    probability_of_improvement: stats.IntervalEstimate
    treatment_seeds: int = 0
    control_seeds: int = 0

    @property
    def has_intervals(self) -> bool:
        """Whether both sides have enough seeds for an interval (:data:`MIN_SEEDS_FOR_INTERVAL`)."""
        return min(self.treatment_seeds, self.control_seeds) >= MIN_SEEDS_FOR_INTERVAL


def _summarize_variant(v: Variant, reps: int, seed: int) -> VariantSummary:
    finals = v.final_scores

    def ci(stat: stats.Statistic) -> stats.IntervalEstimate:
        low, high = stats.stratified_bootstrap_ci(finals, stat, reps=reps, confidence=CONFIDENCE, seed=seed)
        return stats.IntervalEstimate(float(stat(finals)), low, high)

    mean, iqm = ci(np.mean), ci(stats.iqm)
    curves = [r.evaluation for r in v.runs]
    auc = float(np.mean([stats.area_under_curve(c.timesteps, c.mean_returns) for c in curves]))
    both = [(r.randomized.final_return, r.evaluation.final_return) for r in v.runs if r.randomized]
    rand_mean: float | None = None
    ratio: float | None = None
    if both:
        rand_mean, in_dist = (float(np.mean(side)) for side in zip(*both, strict=True))
        ratio = rand_mean / in_dist if in_dist > 0 else None
    seeds = tuple(r.seed for r in v.runs)
    return VariantSummary(
        v.label, v.params, v.is_baseline, seeds, finals, mean, iqm, auc, rand_mean, len(both), ratio
    )


def _compare(kind: ComparisonKind, treatment: Variant, control: Variant, reps: int, seed: int) -> Comparison:
    x, y = treatment.final_scores, control.final_scores
    diff = stats.difference_ci(x, y, np.mean, reps=reps, confidence=CONFIDENCE, seed=seed)
    low, high = stats.probability_of_improvement_ci(x, y, reps=reps, confidence=CONFIDENCE, seed=seed)
    poi = stats.IntervalEstimate(stats.probability_of_improvement(x, y), low, high)
    return Comparison(kind, treatment.label, control.label, diff, poi, len(x), len(y))


def _without(params: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in keys}


def _agree(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``a`` and ``b`` agree on the keys they share, other than aux and kl_weight."""
    return all(a[k] == b[k] for k in (set(a) & set(b)) - {AUX_KEY, KL_KEY})


def _pairings(variants: Sequence[Variant]) -> tuple[list[tuple[ComparisonKind, Variant, Variant]], list[str]]:
    """KL on vs off, every variant vs the baseline, then every ReLIC variant vs CURL."""
    pairs: list[tuple[ComparisonKind, Variant, Variant]] = []
    notes: list[str] = []
    relic = [v for v in variants if v.aux == "relic"]
    for on in [v for v in relic if v.kl_weight is not None and v.kl_weight > 0]:
        rest = _without(on.params, KL_KEY)
        offs = [v for v in relic if v.kl_weight == 0 and _without(v.params, KL_KEY) == rest]
        if not offs:
            notes.append(f"`{on.label}` has no `{KL_KEY} = 0` counterpart with otherwise identical params.")
        pairs.extend(("kl", on, off) for off in offs)
    groups: tuple[tuple[ComparisonKind, list[Variant], list[Variant]], ...] = (
        ("baseline", [v for v in variants if not v.is_baseline], [v for v in variants if v.is_baseline]),
        ("curl", relic, [v for v in variants if v.aux == "curl"]),
    )
    for kind, treatments, controls in groups:
        for variant in treatments:
            # A single control serves every variant: e.g. the temperature does not affect it.
            matching = [c for c in controls if _agree(c.params, variant.params)]
            if not matching and len(controls) == 1:
                matching = controls
            pairs.extend((kind, variant, c) for c in matching)
    return pairs, notes


def summarize(
    ablation: Ablation, *, reps: int = 2000, seed: int = 0
) -> tuple[list[VariantSummary], list[Comparison], list[str]]:
    """Per-variant summaries (in variant order), the comparisons, and notes on missing pairings."""
    variants = ablation.variants()
    summaries = [_summarize_variant(v, reps, seed) for v in variants]
    pairs, notes = _pairings(variants)
    comparisons = [_compare(kind, treatment, control, reps, seed) for kind, treatment, control in pairs]
    return summaries, comparisons, notes


def _csv_value(value: Any) -> str:
    return "" if value is None else str(value)


def write_results_csv(ablation: Ablation, path: Path) -> None:
    """One row per run and timestep (in-distribution or randomized); a missing value is left empty.

    Columns: ``variant``, each grid key, ``seed``, ``timesteps``, ``mean_return``, ``randomized_mean_return``.
    """
    keys = list(ablation.grid)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", *keys, "seed", "timesteps", "mean_return", "randomized_mean_return"])
        for variant in ablation.variants():
            for run in variant.runs:
                in_dist = run.evaluation.as_dict()
                randomized = run.randomized.as_dict() if run.randomized is not None else {}
                params = [_csv_value(run.params.get(k)) for k in keys]
                for t in sorted(set(in_dist) | set(randomized)):
                    values = [_csv_value(in_dist.get(t)), _csv_value(randomized.get(t))]
                    writer.writerow([variant.label, *params, run.seed, t, *values])


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _fmt_ci(e: stats.IntervalEstimate) -> str:
    return f"{_fmt(e.point)} [{_fmt(e.low)}, {_fmt(e.high)}]"


def _fmt_variant(e: stats.IntervalEstimate, scores: FloatArray, per_seed: bool) -> str:
    if len(scores) >= MIN_SEEDS_FOR_INTERVAL:
        return _fmt_ci(e)
    if not per_seed:
        return f"{_fmt(e.point)} (no CI)"
    seeds = "seed" if len(scores) == 1 else "seeds"
    return f"{_fmt(e.point)} (no CI; {len(scores)} {seeds}: {', '.join(_fmt(float(v)) for v in scores)})"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in [header, *rows]]
    return [lines[0], "|" + "---|" * len(header), *lines[1:]]


def _comparison_table(header: Sequence[str], comparisons: Iterable[Comparison]) -> list[str]:
    rows = []
    for c in comparisons:
        cells = [_md(c.treatment), _md(c.control)]
        for e in (c.mean_difference, c.probability_of_improvement):
            no_ci = f"{_fmt(e.point)} (no CI: {c.treatment_seeds} vs {c.control_seeds} seeds)"
            cells.append(_fmt_ci(e) if c.has_intervals else no_ci)
        rows.append(cells)
    return _table(header, rows)


def _problems(ablation: Ablation) -> tuple[str, ...]:
    """The warnings at the end of the summary, skipped runs first."""
    return tuple(f"Skipped `{s.name}`: {s.reason}." for s in ablation.skipped) + ablation.warnings


def render_summary(
    ablation: Ablation,
    summaries: Sequence[VariantSummary],
    comparisons: Sequence[Comparison],
    notes: Sequence[str],
    *,
    reps: int,
    seed: int,
) -> str:
    """The Markdown text of ``summary.md``."""
    pct = f"{CONFIDENCE:.0%}"
    grid = "; ".join(f"`{k}` in {v}" for k, v in ablation.grid.items())
    lines = [
        f"# Ablation report: {ablation.env_id}",
        "",
        f"- Folder: `{ablation.path}`",
        f"- Environment: `{ablation.env_id}`",
        f"- Budget: {ablation.total_timesteps} timesteps per run",
        f"- Seeds: {list(ablation.seeds)} ({len(ablation.seeds)} planned); runs analysed: "
        f"{len(ablation.runs)}, skipped: {len(ablation.skipped)}",
        f"- Grid: {grid}; no-aux baseline: {'yes' if ablation.baseline else 'no'}",
    ]
    if ablation.command is not None:
        lines += ["- Command:", "", "  ```", f"  {ablation.command}", "  ```"]
    lines += [
        "- Figures: `curves.png`, `curves.pdf`; per-evaluation numbers: `results.csv`",
        "",
        "## Methodology",
        "",
        "Following Agarwal et al. (2021), *Deep Reinforcement Learning at the Edge of the Statistical "
        "Precipice*. The **final score** of a run is its mean evaluation return at its last evaluation "
        "point. Per variant we report the mean and the **IQM** (interquartile mean: the 25% trimmed mean "
        "of the final scores, `scipy.stats.trim_mean(x, 0.25)` as in rliable; with 3 seeds or fewer nothing "
        f"is trimmed and it equals the mean), each with a {pct} percentile bootstrap interval over runs "
        f"(stratified bootstrap, {reps} replicates, seed {seed}). **AUC** is the trapezoidal area under "
        "a run's learning curve divided by its time span, i.e. the average return over training, then "
        "averaged over seeds. The randomized ratio is the mean randomized final score divided by the mean "
        "in-distribution final score of the same runs (n/a when that is not positive). Comparisons report "
        f"the difference of mean final scores with a {pct} bootstrap interval (both variants' runs "
        "resampled independently) and the **probability of improvement** P(X > Y) + 0.5 P(X = Y) over all "
        "pairs of runs (Mann-Whitney U / (n m)) with its bootstrap interval. With few seeds the intervals "
        "are wide and the percentile bootstrap tends to under-cover: read them as indicative. With fewer "
        f"than {MIN_SEEDS_FOR_INTERVAL} seeds in a variant **no interval is given** (a bootstrap over one "
        "or two runs only restates them): the table shows the per-seed values instead, and comparisons "
        "involving such a variant show the point value only.",
        "",
        "## Per-variant results",
        "",
    ]
    header = ["Variant", "Seeds", f"Final mean [{pct} CI]", f"Final IQM [{pct} CI]", "AUC (mean)"]
    header += ["Randomized final (mean)", "Randomized / in-dist"]
    rows = []
    for s in summaries:
        rand = ratio = "-"
        if s.randomized_final_mean is not None:
            rand = _fmt(s.randomized_final_mean)
            if s.randomized_runs != s.n_seeds:
                rand += f" (n={s.randomized_runs})"
            ratio = "n/a" if s.randomized_ratio is None else _fmt(s.randomized_ratio)
        mean = _fmt_variant(s.final_mean, s.final_scores, per_seed=True)
        iqm = _fmt_variant(s.final_iqm, s.final_scores, per_seed=False)
        rows.append([_md(s.label), str(s.n_seeds), mean, iqm, _fmt(s.auc_mean), rand, ratio])
    lines += [*_table(header, rows), "", "## KL on vs off", ""]
    kl = [c for c in comparisons if c.kind == "kl"]
    if KL_KEY not in ablation.grid:
        lines.append(f"`{KL_KEY}` is not a grid parameter of this ablation: nothing to compare.")
    elif not kl:
        lines.append(f"No pair of variants differing only in `{KL_KEY}` (> 0 vs = 0) has usable runs.")
    else:
        lines += [f"Positive differences and P > 0.5 favour the KL penalty (`{KL_KEY}` > 0).", ""]
        header = ["KL on", "KL off", f"Mean final on - off [{pct} CI]", f"P(on > off) [{pct} CI]"]
        lines += _comparison_table(header, kl)
    lines += [f"- {n}" for n in notes]
    for kind, title, control in (("baseline", "the no-aux baseline", "Baseline"), ("curl", "CURL", "CURL")):
        selected = [c for c in comparisons if c.kind == kind]
        name = control.lower()
        if selected:
            header = ["Variant", control, f"Mean final variant - {name} [{pct} CI]"]
            lines += ["", f"## Against {title}", ""]
            lines += _comparison_table([*header, f"P(variant > {name}) [{pct} CI]"], selected)
        elif kind == "baseline" and ablation.baseline:
            lines += ["", "The no-aux baseline was planned but has no usable runs."]
    problems = _problems(ablation)
    if problems:
        lines += ["", "## Warnings", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def _aligned(curves: Sequence[EvalCurve]) -> tuple[FloatArray, FloatArray] | None:
    """``(timesteps [points], returns [runs, points])``: differing grids are interpolated onto every
    timestep in the range all runs cover (``None`` when there is none)."""
    first = curves[0].timesteps
    if all(np.array_equal(c.timesteps, first) for c in curves):
        return first, np.stack([c.mean_returns for c in curves])
    lo = max(float(c.timesteps[0]) for c in curves)
    hi = min(float(c.timesteps[-1]) for c in curves)
    grid = np.unique(np.concatenate([c.timesteps for c in curves]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size == 0:
        return None
    return grid, np.stack([np.interp(grid, c.timesteps, c.mean_returns) for c in curves])


#: One hatch per variant, so that overlapping bands stay distinguishable where their colours blend.
_HATCHES = ("//", "\\\\", "..", "xx", "--", "++", "oo", "||")
#: Font sizes >= 9 pt at the figure's physical size, legible at paper width.
_FONT_SIZES: dict[Any, int] = {
    **dict.fromkeys(("font.size", "axes.titlesize", "axes.labelsize"), 10),
    **dict.fromkeys(("xtick.labelsize", "ytick.labelsize", "legend.fontsize"), 9),
}


def _draw_panel(
    ax: Axes, variants: Sequence[Variant], randomized: bool, colors: Mapping[str, Any], reps: int, seed: int
) -> bool:
    """Return whether any confidence band was drawn."""
    banded = False
    for index, variant in enumerate(variants):
        curves = [r.randomized if randomized else r.evaluation for r in variant.runs]
        present = [c for c in curves if c is not None]
        aligned = _aligned(present) if present else None
        if aligned is None:
            continue
        t, returns = aligned
        style = "--" if variant.is_baseline else "-"
        color = colors[variant.label]
        mean = returns.mean(axis=0)
        # A single evaluation (eval_freq >= the budget) is a point, not a line: mark it, with its CI.
        marker = "o" if len(t) == 1 else None
        label = f"{variant.label} (n={len(present)})"
        ax.plot(t, mean, style, color=color, linewidth=2.0, marker=marker, label=label, zorder=3)
        # Thin lines per seed, so that a mean of two runs is never read as a trend on its own.
        for run in returns:
            ax.plot(t, run, style, color=color, linewidth=0.8, alpha=0.35, zorder=2)
        if len(present) < MIN_SEEDS_FOR_INTERVAL:
            continue
        low, high = stats.mean_curve_ci(returns, reps=reps, confidence=CONFIDENCE, seed=seed)
        hatch = _HATCHES[index % len(_HATCHES)]
        ax.fill_between(t, low, high, facecolor=color, alpha=0.15, edgecolor=color, hatch=hatch, linewidth=0)
        banded = True
        if len(t) == 1:
            ax.errorbar(t, mean, yerr=[mean - low, high - mean], fmt="none", color=color, capsize=4)
    ax.set_ylabel("Mean evaluation return")
    ax.grid(alpha=0.3)
    return banded


def _caption(ablation: Ablation, banded: bool) -> str:
    seeds = sorted({len(v.runs) for v in ablation.variants()})
    per_variant = "/".join(str(n) for n in seeds) if seeds else "0"
    episodes = sorted({r.evaluation.episodes for r in ablation.runs if r.evaluation.episodes})
    evals = f"{'/'.join(map(str, episodes))} deterministic episodes per evaluation" if episodes else ""
    bands = (
        f"bands: {CONFIDENCE:.0%} bootstrap CI of the mean (variants with >= {MIN_SEEDS_FOR_INTERVAL} seeds)"
        if banded
        else f"no CI bands (fewer than {MIN_SEEDS_FOR_INTERVAL} seeds per variant)"
    )
    parts = [f"{per_variant} seeds per variant (thin lines: single seeds, thick: their mean)", evals, bands]
    # One part per line when they do not fit on one, so that the title never runs past the figure's edges.
    text = "; ".join(p for p in parts if p) + "."
    return text if len(text) <= 100 else ";\n".join(p for p in parts if p) + "."


def plot_curves(ablation: Ablation, *, reps: int = 2000, seed: int = 0) -> Figure:
    """Unsaved figure (7 x 3 in per panel) of each variant's seeds (thin) under their mean (thick).

    Variants with at least :data:`MIN_SEEDS_FOR_INTERVAL` seeds get a hatched 95% bootstrap band. A
    second panel shows the domain-randomized evaluations when any run has them.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    from matplotlib.figure import Figure

    variants = ablation.variants()
    palette = matplotlib.colormaps["tab10"]
    # The baselines sort last, so the others take the first colours.
    colors = {v.label: "0.35" if v.is_baseline else palette(i % 10) for i, v in enumerate(variants)}
    n_panels = 2 if ablation.has_randomized else 1
    with matplotlib.rc_context(_FONT_SIZES):
        fig = Figure(figsize=(7.0, 3.0 * n_panels), layout="constrained")
        axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
        banded = False
        for i, ax in enumerate(axes):
            banded |= _draw_panel(ax, variants, randomized=i == 1, colors=colors, reps=reps, seed=seed)
            ax.set_title(["In-distribution evaluation", "Domain-randomized evaluation"][i])
        # One legend below both panels, so that it never hides a curve.
        handles: dict[str, Any] = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            fig.legend(
                list(handles.values()), list(handles), loc="outside lower center", ncols=2, frameon=False
            )
        axes[-1].set_xlabel("Timesteps")
        title = f"{ablation.env_id}: mean over seeds" + (f", {CONFIDENCE:.0%} bootstrap CI" if banded else "")
        fig.suptitle(f"{title}\n{_caption(ablation, banded)}", fontsize=9)
    return fig


@dataclass(frozen=True)
class ReportPaths:
    """The files :func:`write_report` wrote (PNG at 200 dpi), the summaries and comparisons in report
    order, the summary's warnings and the number of figure panels."""

    results_csv: Path
    summary_md: Path
    curves_png: Path
    curves_pdf: Path
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    warnings: tuple[str, ...]
    n_panels: int

    def variant(self, label: str) -> VariantSummary:
        """The summary of the variant called ``label``."""
        for summary in self.variants:
            if summary.label == label:
                return summary
        raise KeyError(f"no variant {label!r}; variants: {[s.label for s in self.variants]}")


def write_report(
    ablation_dir: Path | str, *, out_dir: Path | str | None = None, reps: int = 2000, seed: int = 0
) -> ReportPaths:
    """Write ``results.csv``, ``summary.md``, ``curves.png`` and ``curves.pdf`` for an ablation.

    :param out_dir: created if needed; the ablation folder by default.
    :param reps: bootstrap replicates of every interval (2000 or more for a paper), seeded by ``seed``.
    :raises ReportError: when the folder is not an ablation or no run has been evaluated yet.
    :raises ValueError: when ``reps < 1``.
    """
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"`reps` must be an integer >= 1, got {reps!r}.")
    ablation = load_ablation(ablation_dir)
    if not ablation.runs:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in ablation.skipped)
        raise ReportError(f"No run under {ablation.path / 'runs'} has evaluation results yet ({reasons}).")
    out = ablation.path if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, summary, png, pdf = (out / name for name in _REPORT_FILES)
    summaries, comparisons, notes = summarize(ablation, reps=reps, seed=seed)
    write_results_csv(ablation, table)
    text = render_summary(ablation, summaries, comparisons, notes, reps=reps, seed=seed)
    summary.write_text(text, encoding="utf-8")
    fig = plot_curves(ablation, reps=reps, seed=seed)
    fig.savefig(png, dpi=200)
    fig.savefig(pdf)
    return ReportPaths(
        table, summary, png, pdf, tuple(summaries), tuple(comparisons), _problems(ablation), len(fig.axes)
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m relic_rl.report",
        description="Write results.csv, summary.md and curves.png/.pdf for an ablation folder.",
    )
    parser.add_argument("ablation_dir", type=Path, help="ablation folder (with ablation.yaml and runs/)")
    parser.add_argument(
        "--reps", type=int_at_least(1), default=2000, help="bootstrap replicates (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--out-dir", type=Path, help="output folder (default: the ablation folder)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.ablation_dir, out_dir=args.out_dir, reps=args.reps, seed=args.seed)
    except ReportError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{parser.prog}: error: cannot write the report: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {paths.results_csv}, {paths.summary_md}, {paths.curves_png} and {paths.curves_pdf}.")
    if paths.warnings:
        print(f"{len(paths.warnings)} warning(s), listed at the end of {paths.summary_md}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
