"""The plan of an ablation: its identity, its cells with their train commands and states; written to
the folder (:mod:`relic_rl.ablation.folder`) by :func:`write_ablation_files` once the ablation runs."""

from __future__ import annotations

import dataclasses
import difflib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relic_rl.ablation.folder import (
    ABLATION_FILE,
    CELLS_DIR,
    LOGS_DIR,
    RUNS_DIR,
    CellState,
    check_out_dir,
    inspect_run,
    write_yaml_once,
)
from relic_rl.ablation.grid import (
    KL_KEY,
    RELIC_FIELDS,
    Cell,
    GridError,
    assemble_grid,
    expand_cells,
    format_value,
    parse_grid_specs,
)
from relic_rl.ablation.train_args import (
    AblateError,
    cell_flags,
    check_train_args,
    config_value,
    plain,
    preflight,
    resolve,
    split_hyperparams,
    valid_grid_keys,
)

__all__ = ["AblationSpec", "Plan", "PlannedCell", "make_plan", "refresh_states", "write_ablation_files"]


@dataclass(frozen=True)
class AblationSpec:
    """What identifies an ablation: re-running with the same spec continues it (``grid`` has the KL
    axis first; ``train_args`` are the other train flags, as given)."""

    env_id: str
    total_timesteps: int
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    baseline: bool
    train_args: tuple[str, ...]
    curl: bool = False

    def identity(self) -> dict[str, Any]:
        """The keys compared with an existing ``ablation.yaml``."""
        identity: dict[str, Any] = plain(dataclasses.asdict(self))
        if not self.curl:  # omitted, so that ablation folders written before CURL still match
            del identity["curl"]
        return identity


@dataclass(frozen=True)
class PlannedCell:
    """A cell with the train arguments of a fresh run (recorded in ``command.txt``), its resolved config
    (without ``meta``; ``run_config``: the :class:`~relic_rl.runs.RunConfig` a new run folder is written
    from) and its state (:mod:`relic_rl.ablation.folder`); ``detail`` describes an existing folder."""

    cell: Cell
    train_args: tuple[str, ...]
    config: dict[str, Any]
    state: CellState
    detail: str = ""
    done_timesteps: int = 0
    run_config: Any = None


@dataclass(frozen=True)
class Plan:
    """The validated ablation: its folder, identity, every cell in run order, and command line."""

    out: Path
    spec: AblationSpec
    cells: list[PlannedCell] = field(default_factory=list)
    command: str = ""

    def run_dir(self, name: str) -> Path:
        return self.out / RUNS_DIR / name

    def log_path(self, name: str) -> Path:
        return self.out / LOGS_DIR / f"{name}.log"

    @property
    def to_run(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.state != "finished"]

    def describe(self) -> str:
        """The grid, the cells and the cost, as printed by ``--dry-run``."""
        spec, cells, to_run = self.spec, self.cells, self.to_run
        variants = list(dict.fromkeys(c.cell.variant for c in cells))
        steps = spec.total_timesteps
        width = max(len(c.cell.name) for c in cells)
        first = to_run[0] if to_run else cells[0]
        lines = [
            f"Ablation of {spec.env_id} in {self.out}",
            "grid:",
            *(f"  {k}: {', '.join(format_value(v) for v in vs)}" for k, vs in spec.grid.items()),
            f"baseline (no aux): {'yes' if spec.baseline else 'no'}",
            *(["curl: yes"] if spec.curl else []),
            f"seeds: {', '.join(str(s) for s in spec.seeds)}",
            f"variants ({len(variants)}):",
            *(f"  {v}" for v in variants),
            f"runs: {len(cells)} = {len(variants)} variants x {len(spec.seeds)} seeds; "
            f"cost: {len(cells)} runs x {steps:,} steps = {len(cells) * steps:,} env steps",
            f"to do now: {len(to_run)} runs ({sum(c.state == 'resume' for c in cells)} resumed), "
            f"{sum(steps - c.done_timesteps for c in to_run):,} env steps; "
            f"{sum(c.state == 'finished' for c in cells)} already finished",
            "cells:",
            *(
                f"  {c.state:<8}  {c.cell.name:<{width}}{c.detail and f'  ({c.detail})'}".rstrip()
                for c in cells
            ),
            f"train command of {first.cell.name}:",
            f"  python -m relic_rl.train {shlex.join(first.train_args)}",
            *(f"note: {note}" for note in self.notes()),
        ]
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """Settings that make a poor ablation report (too few evaluations)."""
        agent = self.cells[0].config.get("agent", {}) if self.cells else {}
        episodes, freq = agent.get("eval_episodes"), agent.get("eval_freq")
        steps = self.spec.total_timesteps
        if episodes == 0:
            return ["eval_episodes is 0: the runs are never evaluated, so there will be no report."]
        if isinstance(freq, int) and freq * 2 > steps:
            points, suggested = steps // freq + (steps % freq != 0), max(1, steps // 10)
            return [
                f"eval_freq {freq:,} with {steps:,} steps gives {points} evaluation(s) per run, so the "
                f"learning curves have {points} point(s); for curves pass e.g. --eval-freq {suggested}."
            ]
        return []


def make_plan(
    *,
    env_id: str,
    seeds: Sequence[int],
    total_timesteps: int | None,
    kl_weights: Sequence[float] | None,
    grid_specs: Sequence[str],
    baseline: bool,
    train_args: Sequence[str],
    out: Path,
    command: str,
    check_models: bool = True,
    relic: bool = True,
    curl: bool = False,
) -> Plan:
    """Validate everything (grid, train flags, ``out``, existing run folders) and build the plan; nothing
    is written. Arguments are the ablation's flags (``None``: preset defaults), ``train_args`` the other
    flags, ``command`` the command line for ``ablation.yaml``; ``check_models`` builds the env and model
    of every variant once (train's preflight); ``relic=False`` drops the ReLIC variants and KL axis.

    :raises AblateError: on any user error (grid, flags, folder, changed configs)."""
    try:
        extra_grid = parse_grid_specs(grid_specs)
    except GridError as err:
        raise AblateError(str(err)) from None
    if not seeds:
        raise AblateError("--seeds needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
        raise AblateError(f"--seeds repeats {repeated}; each seed may appear once.")
    check_train_args(train_args, [KL_KEY, *extra_grid])
    rest, user_items = split_hyperparams(train_args)

    def argv(cell: Cell | None, seed: int, budget: int | None) -> list[str]:
        flags, items = cell_flags(cell) if cell is not None else (["--aux", "relic"], [])
        base = ["--env", env_id, "--seed", str(seed)]
        if budget is not None:
            base += ["--total-timesteps", str(budget)]
        if cell is not None:
            base += ["--log-dir", str(out / RUNS_DIR), "--run-name", cell.name]
        all_items = [*user_items, *items]
        return [*base, *flags, *rest, *(["--hyperparams", *all_items] if all_items else []), "--no-progress"]

    _, probe = resolve(argv(None, seeds[0], total_timesteps), "The train flags")
    algo = str(probe["algo"])
    valid = valid_grid_keys(algo)
    unknown = [k for k in extra_grid if k not in valid]
    if unknown:
        close = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise AblateError(
            f"Unknown grid key(s) {', '.join(unknown)} for {algo}.{hint} Valid keys: the ReLIC fields "
            f"{', '.join(RELIC_FIELDS)}; and the {algo} hyperparameters "
            f"{', '.join(k for k in valid if k not in RELIC_FIELDS)}."
        )
    budget = int(total_timesteps if total_timesteps is not None else probe["total_timesteps"])
    if not relic and kl_weights is not None:
        raise AblateError("--kl-weights needs the ReLIC variants; add relic to --aux or drop --kl-weights.")
    try:
        grid = (
            assemble_grid(kl_weights, extra_grid, config_value(probe, KL_KEY)) if relic else dict(extra_grid)
        )
        cells = expand_cells(grid, seeds, baseline, relic=relic, curl=curl)
    except GridError as err:
        raise AblateError(str(err)) from None

    planned = []
    for cell in cells:
        args = tuple(argv(cell, cell.seed, budget))
        run_config, config = resolve(args, f"Cell {cell.name}")
        planned.append(PlannedCell(cell, args, config, "new", run_config=run_config))
    _check_axes_take_effect(planned)
    spec = AblationSpec(env_id, budget, tuple(seeds), grid, baseline, tuple(train_args), curl)
    check_out_dir(out, spec.identity())
    plan = refresh_states(Plan(out, spec, planned, command))
    if check_models:  # last: the slowest check; once per variant (the cells of the first seed)
        for c in planned:
            if c.cell.seed == seeds[0]:
                preflight(c.run_config, f"Cell {c.cell.name}")
    return plan


def refresh_states(plan: Plan) -> Plan:
    """The plan with each cell's state re-read from its run folder; AblateError when one holds another
    config or no training run."""
    cells = []
    for c in plan.cells:
        state, detail, done = inspect_run(plan.run_dir(c.cell.name), c.config, c.cell.name)
        cells.append(dataclasses.replace(c, state=state, detail=detail, done_timesteps=done))
    return dataclasses.replace(plan, cells=cells)


def _check_axes_take_effect(planned: Sequence[PlannedCell]) -> None:
    """Two values of an axis must give two configs; otherwise a train flag overrides the axis."""
    by_resolved: dict[tuple[str, str], list[Any]] = {}
    for c in planned:
        if c.cell.seed != planned[0].cell.seed:
            continue
        for key, value in c.cell.grid_params.items():
            values = by_resolved.setdefault((key, repr(config_value(c.config, key))), [])
            if not any(v == value for v in values):
                values.append(value)
    for (key, resolved), values in by_resolved.items():
        if len(values) > 1:
            shown = ", ".join(f"{key}={format_value(v)}" for v in values)
            raise AblateError(
                f"The grid values {shown} all give the same config ({key} = {resolved}): something else "
                "(a train flag or the preset) overrides the axis. Remove the override or the axis."
            )


def write_ablation_files(plan: Plan) -> None:
    """``ablation.yaml`` (once: it records the first command), ``cells/*.yaml``, ``runs/``, ``logs/``."""
    for sub in (CELLS_DIR, RUNS_DIR, LOGS_DIR):
        (plan.out / sub).mkdir(parents=True, exist_ok=True)
    path = plan.out / ABLATION_FILE
    if not path.is_file():
        write_yaml_once(path, {**plan.spec.identity(), "command": plan.command})
    for planned in plan.cells:
        write_yaml_once(plan.out / CELLS_DIR / f"{planned.cell.name}.yaml", planned.cell.to_yaml())
